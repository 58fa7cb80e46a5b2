"""Celery interfaces of the events app (STYLE S8): ids in, one service call."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.jobs import TRANSIENT_ERRORS

logger = logging.getLogger("events.tasks")


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=5,
             retry_backoff_max=300, retry_jitter=True, max_retries=5, soft_time_limit=300,
             time_limit=360)
def enforce_history_cap_task(tenant_id: int, job_id: int) -> None:
    """Run one :class:`~apps.events.models.HistoryCapJob` (an ingestion batch's history
    cap). Idempotent (a second run finds nothing over the cap; a finished job is not run
    again), so ``acks_late`` is safe; a lost message is re-sent by the job sweeper."""
    from apps.events.services import run_history_cap_job

    run_history_cap_job(tenant_id=tenant_id, job_id=job_id)
