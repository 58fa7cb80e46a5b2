from __future__ import annotations

import logging

from celery import shared_task

from apps.core.jobs import TRANSIENT_ERRORS

logger = logging.getLogger("audit.tasks")


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=15,
             retry_backoff_max=600, retry_jitter=True, max_retries=5,
             soft_time_limit=1500, time_limit=1800)
def verify_audit_chain_task(tenant_id: int, job_id: int) -> None:
    """Verify one tenant's audit chain. Idempotent: a finished job is not run again."""
    from apps.audit.models import AuditChainVerification
    from apps.audit.services import run_chain_verification
    from apps.core.jobs import run_job

    job = run_job(AuditChainVerification, tenant_id=tenant_id, job_id=job_id,
                  work=lambda job: run_chain_verification(job=job))
    if job is not None and not job.intact:
        logger.error("audit.chain_broken tenant_id=%s sequence=%s", tenant_id,
                     job.first_broken_sequence)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def schedule_audit_chain_verifications_task() -> int:
    """Beat, nightly: one verification job per active tenant."""
    from apps.audit.services import request_chain_verification
    from apps.tenants.models import Tenant

    tenants = list(Tenant.objects.filter(is_active=True))  # housekeeping crosses tenants
    for tenant in tenants:
        request_chain_verification(tenant=tenant)
    return len(tenants)


@shared_task(acks_late=True, soft_time_limit=1500, time_limit=1800)
def export_audit_heads_task() -> int:
    """Beat, daily: append each active tenant's verified chain head, signed, to its file in
    ``AUDIT_HEADS_DIR``. No durable job: it is idempotent (an unchanged head is not written
    again) and the next day's run catches up a missed one. Returns the heads written."""
    from apps.audit.services import export_chain_head
    from apps.tenants.models import Tenant

    written = 0
    for tenant in Tenant.objects.filter(is_active=True):  # housekeeping crosses tenants
        export = export_chain_head(tenant=tenant)
        written += export.written
        if not export.report.intact:
            logger.error("audit.chain_broken tenant_id=%s sequence=%s (head not exported)",
                         tenant.pk, export.report.first_broken_sequence)
    return written
