"""The task rules of DESIGN.md, checked against a real worker process and broker."""

from __future__ import annotations

import os
import signal

import pytest

from apps.audit import services as audit
from apps.audit.models import AuditChainVerification
from apps.core.jobs import DurableJob, sweep_stuck_jobs
from platform_site.celery import app
from tests.factories.tenants import TenantFactory
from tests.integration_support import wait_for

pytestmark = pytest.mark.integration


def _job_status(job_id: int) -> str:
    return AuditChainVerification.all_tenants.get(pk=job_id).status  # polled by id alone


def test_a_job_enqueued_on_commit_runs_on_the_worker(live_worker):
    tenant = TenantFactory()
    entry = audit.record(tenant, "test.action")  # after the tenant's anchored configuration
    job = audit.request_chain_verification(tenant=tenant)
    wait_for(lambda: _job_status(job.pk) == DurableJob.Status.SUCCEEDED)
    job.refresh_from_db()
    assert job.intact is True
    assert job.checked_entries == entry.sequence


def test_the_sweeper_recovers_a_job_whose_message_was_lost(live_worker):
    tenant = TenantFactory()
    job = AuditChainVerification.objects.create(tenant=tenant)  # row written, never sent
    assert sweep_stuck_jobs()["requeued"] >= 1
    wait_for(lambda: _job_status(job.pk) == DurableJob.Status.SUCCEEDED)


def test_a_task_whose_worker_child_is_killed_is_redelivered(live_worker):
    tenant = TenantFactory()
    job = AuditChainVerification.objects.create(tenant=tenant)
    app.send_task("tests.slow_chain_verification", args=[tenant.pk, job.pk, 60])
    wait_for(lambda: _job_status(job.pk) == DurableJob.Status.RUNNING)
    children = live_worker.child_pids()
    assert children, live_worker.log()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _job_status(job.pk) == DurableJob.Status.SUCCEEDED, timeout=60)
    job.refresh_from_db()
    assert job.attempts == 2  # once killed, once redelivered; not lost, not run a third time
