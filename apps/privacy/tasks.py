"""Celery interfaces of the privacy app (STYLE S8): ids in, one service call."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

logger = logging.getLogger("privacy.tasks")
RETRYABLE = (OperationalError, InterfaceError, TimeoutError)


@shared_task(acks_late=True, autoretry_for=RETRYABLE, retry_backoff=5, retry_backoff_max=300,
             retry_jitter=True, max_retries=10, soft_time_limit=600, time_limit=660)
def fulfil_privacy_request_task(tenant_id: int, job_id: int) -> None:
    """Run one fulfilment job (a kind the kinds table runs as a job: access/portability
    export, erasure).

    Idempotent by per-handler checkpoints, so ``acks_late`` is safe: a redelivery after a
    killed worker, or the sweeper's re-send of a lost message, resumes after the last
    finished handler. A non-transient error leaves the job pending for the sweeper, which
    gives up visibly after ``max_attempts``.
    """
    from apps.core.jobs import claim_job, fail_job
    from apps.privacy.models import FulfilmentJob
    from apps.privacy.services import run_fulfilment

    job = claim_job(FulfilmentJob, tenant_id=tenant_id, job_id=job_id)
    if job is None:
        return
    try:
        run_fulfilment(job=job)
    except RETRYABLE:
        raise
    except Exception as exc:
        # The class only: a message could quote a subject's data.
        fail_job(job, f"{type(exc).__name__} in step after "
                      f"{job.progress.get('last_step', 'start')}", retryable=True)
        # Not re-raised: the job row is the record (and the sweeper the retry); the
        # message is done with.
        logger.exception("privacy.fulfilment_failed job=%s", job_id)


@shared_task(acks_late=True, autoretry_for=RETRYABLE, retry_backoff=30, retry_jitter=True,
             max_retries=3, soft_time_limit=300, time_limit=360)
def send_deadline_reminders_task() -> None:
    """Beat, daily: remind tenant staff of overdue and at-risk requests. Idempotent: a
    request is mentioned at most once per 20 hours."""
    from apps.privacy.services import send_deadline_reminders

    logger.info("privacy.reminders %s", send_deadline_reminders())


@shared_task(acks_late=True, autoretry_for=RETRYABLE, retry_backoff=30, retry_jitter=True,
             max_retries=3, soft_time_limit=900, time_limit=960)
def privacy_housekeeping_task() -> None:
    """Beat, hourly: delete export files after 7 days, prune spent verification material,
    reject portal requests never verified (request records themselves go by the retention
    app's policy). Idempotent: each step selects only what is still to do."""
    from apps.privacy.services import run_housekeeping

    logger.info("privacy.housekeeping %s", run_housekeeping())
