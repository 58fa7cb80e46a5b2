"""Retention tasks (STYLE S8): thin interfaces over :mod:`apps.retention.services`."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.jobs import TRANSIENT_ERRORS

logger = logging.getLogger("retention.tasks")


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=15,
             retry_backoff_max=900, retry_jitter=True, max_retries=5,
             soft_time_limit=3000, time_limit=3600)
def enforce_retention_task(tenant_id: int, job_id: int) -> None:
    """Run or resume one tenant's retention run. Idempotent: every batch is checkpointed on
    the run row in its own transaction, and a finished run is not run again."""
    from apps.retention.services import claim_and_execute_retention_run

    claim_and_execute_retention_run(tenant_id=tenant_id, run_id=job_id)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def schedule_retention_runs_task() -> int:
    """Beat, every quarter of an hour: start each tenant's daily run once its run time has
    passed (one run per tenant and day; idempotent)."""
    from apps.retention.services import schedule_due_retention_runs

    return schedule_due_retention_runs()
