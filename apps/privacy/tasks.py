"""Celery interfaces of the privacy app (STYLE S8): ids in, one service call."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.jobs import TRANSIENT_ERRORS

logger = logging.getLogger("privacy.tasks")


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=5,
             retry_backoff_max=300, retry_jitter=True, max_retries=10,
             soft_time_limit=600, time_limit=660)
def fulfil_privacy_request_task(tenant_id: int, job_id: int) -> None:
    """Run one fulfilment job (a kind the kinds table runs as a job: access/portability
    export, erasure).

    Idempotent by per-store checkpoints, so ``acks_late`` is safe: a redelivery after a
    killed worker, or the sweeper's re-send of a lost message, resumes after the last
    finished store. Errors follow the job runner's one policy (``apps.core.jobs.run_job``).
    """
    from apps.core.jobs import run_job
    from apps.privacy.models import FulfilmentJob
    from apps.privacy.services import run_fulfilment

    run_job(FulfilmentJob, tenant_id=tenant_id, job_id=job_id,
            work=lambda job: run_fulfilment(job=job))


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30,
             retry_jitter=True, max_retries=3,
             soft_time_limit=300, time_limit=360)
def send_deadline_reminders_task() -> None:
    """Beat, daily: remind tenant staff of overdue and at-risk requests. Idempotent: a
    request is mentioned at most once per 20 hours."""
    from apps.privacy.services import send_deadline_reminders

    logger.info("privacy.reminders %s", send_deadline_reminders())


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30,
             retry_jitter=True, max_retries=3,
             soft_time_limit=900, time_limit=960)
def privacy_housekeeping_task() -> None:
    """Beat, hourly: delete export files after 7 days, prune spent verification material,
    reject portal requests never verified (request records themselves go by the retention
    app's policy), check erasure receipts still pending a model update. Idempotent: each
    step selects only what is still to do."""
    from apps.privacy.services import run_housekeeping

    logger.info("privacy.housekeeping %s", run_housekeeping())


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=10,
             retry_backoff_max=300, retry_jitter=True, max_retries=5,
             soft_time_limit=300, time_limit=360)
def finalise_model_receipts_task(tenant_id: int) -> None:
    """After a model version became the one in service: check the tenant's erasure
    receipts that say "model update pending". Idempotent: a final receipt is never
    written again, a pending one only when what it reports changed."""
    from apps.privacy.services import finalise_model_receipts
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        logger.warning("privacy.receipts_tenant_missing tenant=%s", tenant_id)
        return
    logger.info("privacy.receipts %s", finalise_model_receipts(tenant=tenant))
