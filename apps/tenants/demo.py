"""Demo data for ``make run``: each app registers a seeder that fills the demo tenant."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from apps.tenants.models import Tenant

DemoSeeder = Callable[[Tenant, TextIO], None]
_seeders: list[DemoSeeder] = []


def register_demo_seeder(seeder: DemoSeeder) -> None:
    """Register from ``AppConfig.ready``. Seeders must be idempotent: ``make run`` re-runs."""
    if seeder not in _seeders:
        _seeders.append(seeder)


def run_demo_seeders(tenant: Tenant, out: TextIO) -> None:
    for seeder in _seeders:
        seeder(tenant, out)


#: ``(tenant, base_url) -> lines`` that ``make run`` prints for the demo tenant.
DemoBanner = Callable[[Tenant, str], list[str]]
_banners: list[DemoBanner] = []


def register_demo_banner(banner: DemoBanner) -> None:
    """Register from ``AppConfig.ready``: lines for the start-up banner (links to try)."""
    if banner not in _banners:
        _banners.append(banner)


def demo_banner_lines(tenant: Tenant, base_url: str) -> list[str]:
    return [line for banner in _banners for line in banner(tenant, base_url)]
