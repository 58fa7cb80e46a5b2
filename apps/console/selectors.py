"""The dashboard's figures, read through each app's selectors (STYLE S1, S4).

Every figure is scoped to one tenant and costs a fixed number of queries, whatever the
tenant's size: the events chart reads a per-day tally, not the events (bench: a tenant with
1M events renders in the same queries as an empty one; tests/console/test_dashboard.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.tenants.models import Tenant

#: Days shown by the per-day charts.
DAYS = 14


@dataclass(frozen=True)
class DashboardFigures:
    requests: dict[str, Any]
    consent: list[dict[str, Any]]
    ingestion: list[dict[str, Any]]
    quality: list[dict[str, Any]]
    budget: dict[str, float]
    jobs: list[dict[str, Any]]
    days: list[date]


def list_running_jobs(*, tenant: Tenant) -> list[dict[str, Any]]:
    """Unfinished training, fulfilment (erasure, export...) and retention jobs with their
    progress: three queries."""
    from apps.modeling.selectors import list_running_training
    from apps.privacy.selectors import list_running_fulfilment
    from apps.retention.selectors import list_running_retention

    jobs = [*list_running_training(tenant=tenant), *list_running_fulfilment(tenant=tenant),
            *list_running_retention(tenant=tenant)]
    for job in jobs:
        done, total = job.get("done"), job.get("total")
        job["percent"] = (round(100 * min(done, total) / total)
                          if isinstance(done, int) and isinstance(total, int) and total
                          else None)
    return jobs


def get_dashboard_figures(*, tenant: Tenant, now: datetime | None = None) -> DashboardFigures:
    """Everything the dashboard shows for ``tenant``, in nine queries."""
    from apps.consent.selectors import get_consent_rate_by_day
    from apps.events.selectors import count_ingestion_by_day
    from apps.modeling.selectors import get_privacy_budget, list_version_quality
    from apps.privacy.selectors import get_request_figures

    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    return DashboardFigures(
        requests=get_request_figures(tenant=tenant, now=now),
        consent=get_consent_rate_by_day(tenant=tenant, days=DAYS, now=now),
        ingestion=count_ingestion_by_day(tenant=tenant, days=DAYS, today=today),
        quality=list_version_quality(tenant=tenant),
        budget=get_privacy_budget(tenant=tenant),
        jobs=list_running_jobs(tenant=tenant),
        days=[today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)],
    )
