from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.audit.models import AuditChainVerification
from apps.audit.services import request_chain_verification
from apps.core.jobs import DurableJob, claim_job, sweep_stuck_jobs


def test_a_requested_job_is_enqueued_after_commit_and_completes(
        tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = request_chain_verification(tenant=tenant)
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert (job.status, job.intact, job.attempts) == (DurableJob.Status.SUCCEEDED, True, 1)


def test_a_finished_job_is_not_run_again(tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = request_chain_verification(tenant=tenant)
    assert claim_job(AuditChainVerification, tenant_id=tenant.pk, job_id=job.pk) is None


def test_a_job_of_another_tenant_cannot_be_claimed(tenant, other_tenant):
    job = AuditChainVerification.objects.create(tenant=other_tenant)
    assert claim_job(AuditChainVerification, tenant_id=tenant.pk, job_id=job.pk) is None


def test_the_sweeper_resends_lost_jobs_and_gives_up_visibly(
        tenant, django_capture_on_commit_callbacks):
    lost = AuditChainVerification.objects.create(tenant=tenant)  # never enqueued
    exhausted = AuditChainVerification.objects.create(
        tenant=tenant, status=DurableJob.Status.RUNNING, attempts=5,
        heartbeat_at=timezone.now() - timedelta(hours=1))
    fresh = AuditChainVerification.objects.create(
        tenant=tenant, status=DurableJob.Status.RUNNING, attempts=1, heartbeat_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        counts = sweep_stuck_jobs()
    assert counts == {"requeued": 1, "failed": 1}
    lost.refresh_from_db()
    exhausted.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.status == DurableJob.Status.SUCCEEDED
    assert exhausted.status == DurableJob.Status.FAILED
    assert "gave up after 5 attempts" in exhausted.last_error
    assert fresh.status == DurableJob.Status.RUNNING
