"""Tasks loaded only by the integration tests' worker (settings.worker_test)."""

from __future__ import annotations

import time

from celery import shared_task


@shared_task(name="tests.slow_chain_verification", acks_late=True)
def slow_chain_verification(tenant_id: int, job_id: int, first_attempt_sleep: float) -> None:
    """A chain verification whose first attempt lingers, so a test can kill the worker
    child mid-run and see the message redelivered (acks_late + reject_on_worker_lost)."""
    from apps.audit.models import AuditChainVerification
    from apps.audit.services import run_chain_verification
    from apps.core.jobs import claim_job

    job = claim_job(AuditChainVerification, tenant_id=tenant_id, job_id=job_id)
    if job is None:
        return
    if job.attempts == 1:
        time.sleep(first_attempt_sleep)
    run_chain_verification(job=job)
