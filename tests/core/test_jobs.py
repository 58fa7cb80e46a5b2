from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from apps.audit.models import AuditChainVerification
from apps.audit.services import request_chain_verification
from apps.core.exceptions import ApplicationError
from apps.core.jobs import (
    LOST_MARGIN,
    DurableJob,
    claim_job,
    lost_after,
    reconcile_jobs,
    record_progress,
    run_job,
    sweep_stuck_jobs,
)


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


# --- The one runner and its error policy ---------------------------------------------------


def _run(job: AuditChainVerification, work) -> object:
    return run_job(AuditChainVerification, tenant_id=job.tenant_id, job_id=job.pk, work=work)


def test_the_runner_finishes_a_job_its_work_left_running(tenant):
    job = AuditChainVerification.objects.create(tenant=tenant)
    assert _run(job, lambda claimed: "done") == "done"
    job.refresh_from_db()
    assert (job.status, job.attempts) == (DurableJob.Status.SUCCEEDED, 1)
    assert _run(job, lambda claimed: pytest.fail("a finished job ran again")) is None


def test_a_domain_refusal_fails_the_job_for_good(tenant):
    job = AuditChainVerification.objects.create(tenant=tenant)

    def refuse(claimed):
        raise ApplicationError("Nothing to do.", code="nothing_to_do")

    assert _run(job, refuse) is None
    job.refresh_from_db()
    assert job.status == DurableJob.Status.FAILED
    assert job.last_error == "nothing_to_do: Nothing to do."


def test_a_transient_error_leaves_the_job_pending_and_is_raised_for_the_task_retry(tenant):
    job = AuditChainVerification.objects.create(tenant=tenant)

    def database_gone(claimed):
        raise OperationalError("server closed the connection")

    with pytest.raises(OperationalError):
        _run(job, database_gone)
    job.refresh_from_db()
    assert job.status == DurableJob.Status.PENDING
    assert job.last_error == "transient: OperationalError"


def test_a_fault_is_recorded_by_class_only_and_left_to_the_sweeper(tenant):
    job = AuditChainVerification.objects.create(tenant=tenant, max_attempts=2)

    def fault(claimed):
        record_progress(claimed, last_step="events.event")
        raise ValueError("subject alice@example.com broke it")

    assert _run(job, fault) is None
    job.refresh_from_db()
    assert job.status == DurableJob.Status.PENDING
    assert job.last_error == "ValueError after events.event"
    assert _run(job, fault) is None  # the second attempt spends max_attempts
    job.refresh_from_db()
    assert job.status == DurableJob.Status.FAILED
    assert "alice" not in job.last_error


# --- A whole worker lost ---------------------------------------------------------------------


def _running(tenant, *, worker: str, heartbeat_ago: timedelta = timedelta(seconds=5),
             attempts: int = 1) -> AuditChainVerification:
    return AuditChainVerification.objects.create(
        tenant=tenant, status=DurableJob.Status.RUNNING, attempts=attempts, worker=worker,
        heartbeat_at=timezone.now() - heartbeat_ago)


def _key(job: AuditChainVerification) -> tuple[str, int, int]:
    return (AuditChainVerification.job_task, job.tenant_id, job.pk)


def test_a_running_job_no_live_worker_executes_is_resent_at_once(
        tenant, django_capture_on_commit_callbacks):
    orphan = _running(tenant, worker="celery@dead")
    held = _running(tenant, worker="celery@alive")
    in_process = _running(tenant, worker="")  # a management command's: only the time rule
    with django_capture_on_commit_callbacks(execute=True) as sent:
        counts = reconcile_jobs(live={_key(held)})
    assert counts == {"requeued": 1, "failed": 0}
    assert len(sent) == 1
    for job in (orphan, held, in_process):
        job.refresh_from_db()
    assert orphan.status == DurableJob.Status.SUCCEEDED  # re-sent, and run (eager here)
    assert orphan.attempts == 2
    assert held.status == in_process.status == DurableJob.Status.RUNNING


def test_without_an_answer_from_the_workers_only_a_restarted_nodes_jobs_are_orphans(tenant):
    started = timezone.now()
    own = _running(tenant, worker="celery@me", heartbeat_ago=timedelta(seconds=30))
    other = _running(tenant, worker="celery@other", heartbeat_ago=timedelta(seconds=30))
    claimed_since = AuditChainVerification.objects.create(  # by this node's new run
        tenant=tenant, status=DurableJob.Status.RUNNING, attempts=1, worker="celery@me",
        heartbeat_at=started + timedelta(seconds=1))
    counts = reconcile_jobs(worker="celery@me", started_at=started, live=None)
    assert counts == {"requeued": 1, "failed": 0}
    for job in (own, other, claimed_since):
        job.refresh_from_db()
    assert own.status == DurableJob.Status.PENDING
    assert other.status == claimed_since.status == DurableJob.Status.RUNNING


def test_an_orphan_out_of_attempts_fails_visibly(tenant):
    job = _running(tenant, worker="celery@dead", attempts=5)
    assert reconcile_jobs(live=set()) == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == DurableJob.Status.FAILED
    assert "gave up after 5 attempts" in job.last_error


def test_the_sweeper_waits_the_tasks_time_limit_before_judging_by_silence(tenant):
    from apps.audit.tasks import verify_audit_chain_task
    from apps.privacy.models import FulfilmentJob
    from apps.privacy.tasks import fulfil_privacy_request_task

    limit = lost_after(AuditChainVerification)
    assert limit == timedelta(seconds=verify_audit_chain_task.time_limit) + LOST_MARGIN
    assert lost_after(FulfilmentJob) == timedelta(
        seconds=fulfil_privacy_request_task.time_limit) + LOST_MARGIN
    quiet = _running(tenant, worker="", heartbeat_ago=limit - timedelta(seconds=30))
    silent = _running(tenant, worker="", heartbeat_ago=limit + timedelta(seconds=30))
    assert sweep_stuck_jobs(live=None) == {"requeued": 1, "failed": 0}
    quiet.refresh_from_db()
    silent.refresh_from_db()
    assert quiet.status == DurableJob.Status.RUNNING
    assert silent.status == DurableJob.Status.PENDING


def test_a_claim_outside_a_worker_names_no_worker(tenant):
    job = AuditChainVerification.objects.create(tenant=tenant)
    claimed = claim_job(AuditChainVerification, tenant_id=tenant.pk, job_id=job.pk)
    assert claimed is not None
    assert claimed.worker == ""
