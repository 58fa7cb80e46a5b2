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
