"""Erasure against a real worker process: killed in the middle, it finishes after the
restart with nothing left behind and nothing done twice (issue 6 acceptance)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.audit.models import AuditEvent
from apps.core.jobs import DurableJob, executing_job_tasks, sweep_stuck_jobs
from apps.events.models import Event
from apps.privacy.models import FulfilmentJob, PrivacyRequest
from apps.privacy.services import check_subject
from platform_site.celery import app
from tests.db_search import columns_containing
from tests.factories.privacy import make_request, seed_subject
from tests.integration_support import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

EXEMPT = {"privacy_privacyrequest.subject_key", "privacy_erasuretombstone.subject_key"}


@pytest.fixture
def hooked_worker(celery_worker_process: WorkerProcess, transactional_db,
                  tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker with the lingering test handler, instead of the session's worker (which
    would take the task without the hook); the session worker restarts when next needed."""
    celery_worker_process.stop()
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**celery_worker_process.env,
           "DJANGO_SETTINGS_MODULE": "tests.privacy.worker_settings",
           "PRIVACY_TEST_MARKER_DIR": str(markers)}
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.markers = markers  # type: ignore[attr-defined]
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        app.conf.CELERY_TASK_ALWAYS_EAGER = True


def _status(pr: PrivacyRequest) -> str:
    return PrivacyRequest.objects.for_tenant(pr.tenant_id).get(pk=pr.pk).status


def _start_erasure(tenant, worker: WorkerProcess) -> tuple[PrivacyRequest, str]:
    key = seed_subject(tenant, "alice@example.com", events=25)
    pr = make_request(tenant, "erasure", "alice@example.com")  # commits: sent to the worker
    wait_for(lambda: (worker.markers / "started").exists(), timeout=60)  # type: ignore[attr-defined]
    job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
    assert "events.event" in job.progress["steps"]  # done and checkpointed before the kill
    assert not Event.all_tenants.filter(subject_key=key).exists()
    return pr, key


def _assert_finished_once(tenant, pr: PrivacyRequest, key: str, worker: WorkerProcess) -> None:
    pr.refresh_from_db()
    assert pr.status == "completed", worker.log()[-3000:]
    job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
    assert job.status == DurableJob.Status.SUCCEEDED
    assert job.attempts == 2  # killed once, resumed once
    steps = AuditEvent.objects.for_tenant(tenant).filter(action="privacy.erasure_step")
    per_handler = {}
    for entry in steps:
        per_handler[entry.details["handler"]] = per_handler.get(entry.details["handler"], 0) + 1
    assert set(per_handler.values()) == {1}, per_handler  # nothing done twice
    calls = (worker.markers / "calls").read_text().split()  # type: ignore[attr-defined]
    assert len(calls) == 2  # the step that was killed, and its one re-run
    counts = {c["handler"]: c["count"] for c in pr.result["receipt"]["categories"]}
    assert counts["events.event"] == 25
    assert set(columns_containing(key)) <= EXEMPT
    assert check_subject(tenant=tenant, subject_key=key).hits == []


def test_a_worker_child_killed_mid_erasure_is_redelivered_and_finishes(tenant, hooked_worker):
    pr, key = _start_erasure(tenant, hooked_worker)
    children = hooked_worker.child_pids()
    assert children, hooked_worker.log()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _status(pr) == "completed", timeout=90)
    _assert_finished_once(tenant, pr, key, hooked_worker)


def test_a_worker_killed_mid_erasure_finishes_after_a_restart(tenant, hooked_worker):
    pr, key = _start_erasure(tenant, hooked_worker)
    job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
    # While its worker lives, the worker reports the job's task and no sweep re-sends it.
    task = (FulfilmentJob.job_task, tenant.pk, job.pk)
    wait_for(lambda: task in (executing_job_tasks() or set()), timeout=60)
    assert sweep_stuck_jobs() == {"requeued": 0, "failed": 0}
    os.killpg(hooked_worker.process.pid, signal.SIGKILL)  # the whole worker, at once
    hooked_worker.process.wait()
    hooked_worker.process = None
    job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
    assert (job.status, job.worker) == (DurableJob.Status.RUNNING, _nodename(hooked_worker))
    assert _status(pr) == "in_progress"
    # The message waits unacknowledged in the broker (until the visibility timeout, an
    # hour here); the job row does not wait: the restarted worker re-sends it as it starts
    # (no beat, no sweep, no clock moved here).
    hooked_worker.start()
    wait_for(lambda: _status(pr) == "completed", timeout=120)
    _assert_finished_once(tenant, pr, key, hooked_worker)
    assert "core.job_orphaned" in hooked_worker.log()


def _nodename(worker: WorkerProcess) -> str:
    import socket

    return f"celery@{socket.gethostname()}"
