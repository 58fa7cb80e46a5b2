"""Reading retention (STYLE S4): effective policies, cutoffs, runs and what a run would
delete now. Other apps use :func:`get_retention_period` (e.g. the oldest event ingestion
accepts, the retention dates a subject is shown)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import status

from apps.core.exceptions import ApplicationError
from apps.core.jobs import DurableJob
from apps.retention import tenant_settings as retention_settings
from apps.retention.categories import (
    RetentionCategory,
    get_retention_category,
    retention_categories,
)
from apps.retention.models import RetentionPolicy, RetentionRun
from apps.tenants.config_memo import memoize_tenant_config
from apps.tenants.models import Tenant
from apps.tenants.services import setting_value

logger = logging.getLogger("retention.selectors")

#: Tenant setting (``tenant.settings`` JSON) overriding the platform's daily run time.
RUN_TIME_SETTING = retention_settings.RUN_TIME.name  # declared in tenant_settings.py
DEFAULT_RUN_TIME = "03:30"
DEFAULT_BATCH_SIZE = 10_000
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class PolicyView:
    """One category's effective policy for one tenant."""

    category: RetentionCategory
    days: int | None          # as set (or the default), None when set in hours or following
    hours: int | None         # as set, None otherwise
    period: timedelta | None  # effective period (for a following category: the other's)
    policy: RetentionPolicy | None  # the stored row (None: never provisioned, defaults)

    @property
    def code(self) -> str:
        return self.category.code

    @property
    def editable(self) -> bool:
        category = self.category
        return (category.follows is None and category.default_days is not None
                and category.time_based and category.settable)


def _stored(tenant: Tenant) -> dict[str, RetentionPolicy]:
    return {p.category: p for p in RetentionPolicy.objects.for_tenant(tenant)}


def _own(category: RetentionCategory, row: RetentionPolicy | None
         ) -> tuple[int | None, int | None, timedelta | None]:
    if row is not None and row.period is not None:
        return row.days, row.hours, row.period
    if category.default_days is None:
        return None, None, None
    return category.default_days, None, timedelta(days=category.default_days)


def list_retention_policies(*, tenant: Tenant) -> list[PolicyView]:
    """Every registered category's policy, in enforcement order: the stored row, or the
    registry default for a category added after the tenant was provisioned."""
    stored = _stored(tenant)
    categories = retention_categories()
    own = {c.code: _own(c, stored.get(c.code)) for c in categories}
    views = []
    for category in categories:
        days, hours, period = own[category.code]
        if category.follows is not None:
            period = own.get(category.follows, (None, None, None))[2]
        views.append(PolicyView(category=category, days=days, hours=hours, period=period,
                                policy=stored.get(category.code)))
    return views


def get_retention_category_or_404(code: str) -> RetentionCategory:
    category = get_retention_category(code)
    if category is None:
        raise ApplicationError(f"No retention category '{code}'.", code="unknown_category",
                               status_code=status.HTTP_404_NOT_FOUND)
    return category


def get_retention_policy(*, tenant: Tenant, category: str) -> PolicyView:
    """One category's effective policy; ``ApplicationError`` (404) for an unknown category."""
    get_retention_category_or_404(category)
    return next(v for v in list_retention_policies(tenant=tenant) if v.code == category)


def get_retention_period(*, tenant: Tenant, category: str) -> timedelta | None:
    """How long ``category`` is kept for ``tenant`` (``None``: not time-based). Memoized
    per configuration revision (ingestion asks for every batch)."""
    get_retention_category_or_404(category)
    periods = memoize_tenant_config(tenant, "retention_periods", lambda: {
        view.code: view.period for view in list_retention_policies(tenant=tenant)})
    if category in periods:
        return periods[category]
    return get_retention_policy(tenant=tenant, category=category).period  # registered since


def get_cutoffs(*, tenant: Tenant, now: datetime | None = None) -> dict[str, datetime]:
    """``{category: cutoff}``: data strictly older than the cutoff is expired. UTC, from
    ``timezone.now()`` (DESIGN "Time")."""
    now = now or timezone.now()
    cutoffs = {}
    for view in list_retention_policies(tenant=tenant):
        if not view.category.time_based:
            cutoffs[view.code] = now  # a count rule: the run's time, for the receipt
        elif view.period is not None:
            cutoffs[view.code] = now - view.period
    return cutoffs


# --- Runs ---------------------------------------------------------------------------------


def list_retention_runs(*, tenant: Tenant) -> QuerySet[RetentionRun]:
    return RetentionRun.objects.for_tenant(tenant).order_by("-created_at", "-pk")


def get_unfinished_run(*, tenant: Tenant) -> RetentionRun | None:
    """The oldest run that has not finished (a new one is never started beside it)."""
    return (RetentionRun.objects.for_tenant(tenant)
            .filter(status__in=[DurableJob.Status.PENDING, DurableJob.Status.RUNNING])
            .order_by("created_at", "pk").first())


def get_last_finished_run(*, tenant: Tenant) -> RetentionRun | None:
    return (RetentionRun.objects.for_tenant(tenant)
            .filter(status__in=[DurableJob.Status.SUCCEEDED, DurableJob.Status.FAILED])
            .order_by("-finished_at", "-pk").first())


def run_checkpoints(run: RetentionRun) -> list[tuple[str, dict]]:
    """``[(category, checkpoint), ...]`` in the run's order."""
    categories = run.progress.get("categories", {})
    return [(code, categories[code]) for code in run.progress.get("order", [])
            if code in categories]


def preview_retention(*, tenant: Tenant, now: datetime | None = None) -> dict[str, int]:
    """The dry run: ``{category: N}`` that ``enforce_retention`` would delete if started
    now, in enforcement order. An unfinished run is what would be resumed, so its fixed
    cutoffs are used and its finished categories count 0. Reads only."""
    unfinished = get_unfinished_run(tenant=tenant)
    if unfinished is not None:
        counts = {}
        for code, checkpoint in run_checkpoints(unfinished):
            category = get_retention_category(code)
            if category is None or checkpoint.get("done"):
                counts[code] = 0
            else:
                cutoff = datetime.fromisoformat(checkpoint["cutoff"])
                counts[code] = category.count(tenant, cutoff)
        return counts
    cutoffs = get_cutoffs(tenant=tenant, now=now)
    return {c.code: c.count(tenant, cutoffs[c.code]) for c in retention_categories()
            if c.code in cutoffs}


# --- Schedule -----------------------------------------------------------------------------


def _parse_run_time(value: object) -> time | None:
    match = _HH_MM.match(value.strip()) if isinstance(value, str) else None
    return time(int(match.group(1)), int(match.group(2))) if match else None


def default_run_time() -> time:
    """The platform's daily run time (UTC): ``settings.RETENTION_RUN_TIME`` or the
    ``RETENTION_RUN_TIME`` environment variable, ``"HH:MM"``; 03:30 when neither is set."""
    configured = getattr(settings, "RETENTION_RUN_TIME", None) or os.environ.get(
        "RETENTION_RUN_TIME")
    parsed = _parse_run_time(configured) if configured else None
    if configured and parsed is None:
        logger.warning("retention.bad_run_time value=%r", configured)
    return parsed or _parse_run_time(DEFAULT_RUN_TIME)  # type: ignore[return-value]


def run_time_for(tenant: Tenant) -> time:
    """The tenant's daily run time (UTC): its ``retention_run_time`` setting, else the
    platform's."""
    return (_parse_run_time(setting_value(tenant, retention_settings.RUN_TIME))
            or default_run_time())


def default_batch_size() -> int:
    """Rows per DELETE statement: ``settings.RETENTION_BATCH_SIZE`` or the environment
    variable of that name; 10,000 by default."""
    value = getattr(settings, "RETENTION_BATCH_SIZE", None) or os.environ.get(
        "RETENTION_BATCH_SIZE")
    try:
        size = int(value) if value is not None else DEFAULT_BATCH_SIZE
    except (TypeError, ValueError):
        size = DEFAULT_BATCH_SIZE
    return size if size > 0 else DEFAULT_BATCH_SIZE


DEFAULT_PAUSE_RATIO = 1.0
MAX_PAUSE_SECONDS = 1.0


def pause_ratio() -> float:
    """Seconds of pause after a full batch per second the batch took:
    ``settings.RETENTION_PAUSE_RATIO`` or the environment variable of that name; 1.0 by
    default (deletion uses at most about half of the database's time, and backs off by
    itself when the database is busy). 0 disables the pause."""
    value = getattr(settings, "RETENTION_PAUSE_RATIO", None)
    if value is None:
        value = os.environ.get("RETENTION_PAUSE_RATIO")
    try:
        ratio = float(value) if value is not None else DEFAULT_PAUSE_RATIO
    except (TypeError, ValueError):
        ratio = DEFAULT_PAUSE_RATIO
    return ratio if ratio >= 0 else DEFAULT_PAUSE_RATIO


def latest_slot(*, tenant: Tenant, now: datetime | None = None) -> datetime:
    """The most recent daily slot at or before ``now`` (UTC)."""
    now = now or timezone.now()
    at = run_time_for(tenant)
    today = datetime.combine(now.astimezone(UTC).date(), at, tzinfo=UTC)
    return today if today <= now else today - timedelta(days=1)


def has_run_for_slot(*, tenant: Tenant, slot: datetime) -> bool:
    return RetentionRun.objects.for_tenant(tenant).filter(scheduled_for=slot).exists()


def get_next_run_at(*, tenant: Tenant, now: datetime | None = None) -> datetime:
    """When beat will next start a run: the latest slot if it has no run yet (beat picks it
    up within a quarter of an hour), otherwise the next day's slot."""
    now = now or timezone.now()
    slot = latest_slot(tenant=tenant, now=now)
    return slot if not has_run_for_slot(tenant=tenant, slot=slot) else slot + timedelta(days=1)


def list_running_retention(*, tenant: Tenant, limit: int = 10) -> list[dict[str, Any]]:
    """Unfinished retention runs with their progress: categories done of all (one query)."""
    from apps.retention.models import RetentionRun

    out = []
    for run in (RetentionRun.objects.for_tenant(tenant)
                .filter(status__in=[RetentionRun.Status.PENDING, RetentionRun.Status.RUNNING])
                .order_by("pk").only("pk", "status", "trigger", "progress")[:limit]):
        progress = run.progress or {}
        categories = progress.get("categories") or {}
        done = sum(1 for c in categories.values() if c.get("done"))
        deleted = sum(int(c.get("deleted", 0)) for c in categories.values())
        out.append({"kind": "retention", "id": run.pk, "status": run.status,
                    "label": f"Retention run {run.pk} ({run.trigger})",
                    "done": done, "total": len(categories) or None,
                    "detail": f"{deleted} rows deleted",
                    "url_name": "admin:retention_retentionrun_change"})
    return out
