"""Training on the real worker (PostgreSQL + Redis): runs, duplicate deliveries, and a
worker child killed mid-training (the active model must not change)."""

from __future__ import annotations

import os
import signal

import pytest

from apps.core.jobs import DurableJob
from apps.modeling.models import ModelVersion, TrainingRun
from apps.modeling.services import request_training, train_model
from apps.modeling.tasks import train_model_task
from tests.factories.modeling import configure, planted_dataset
from tests.integration_support import wait_for

pytestmark = pytest.mark.integration


def _run(run_id: int) -> TrainingRun:
    return TrainingRun.all_tenants.get(pk=run_id)  # polled by id alone


def _planted(tenant):
    configure(tenant, model_algorithms=["als"])
    return planted_dataset(tenant, groups=4, items_per_group=12, subjects_per_group=10,
                           per_subject=7)


def test_a_training_run_trains_on_the_worker(live_worker):
    from tests.factories.tenants import TenantFactory

    tenant = TenantFactory()
    _planted(tenant)
    run = request_training(tenant=tenant)  # enqueued on commit (autocommit here)
    wait_for(lambda: _run(run.pk).status == DurableJob.Status.SUCCEEDED, timeout=60)
    run = _run(run.pk)
    assert run.attempts == 1
    version = ModelVersion.objects.for_tenant(tenant).get()
    assert run.model_version_id == version.pk
    assert version.status == ModelVersion.Status.ACTIVE


def test_a_duplicate_delivery_trains_once(live_worker):
    from tests.factories.tenants import TenantFactory

    tenant = TenantFactory()
    _planted(tenant)
    run = TrainingRun.objects.create(tenant=tenant)
    train_model_task.apply_async(args=[tenant.pk, run.pk])
    train_model_task.apply_async(args=[tenant.pk, run.pk])
    wait_for(lambda: _run(run.pk).status == DurableJob.Status.SUCCEEDED, timeout=60)
    wait_for(lambda: "train_model_task" in live_worker.log()
             and live_worker.log().count("succeeded in") >= 2, timeout=30)
    assert _run(run.pk).attempts == 1
    assert ModelVersion.objects.for_tenant(tenant).count() == 1


def test_a_worker_killed_mid_training_leaves_the_active_model_and_the_run_is_retried(
        live_worker):
    from tests.factories.tenants import TenantFactory

    tenant = TenantFactory()
    _planted(tenant)
    first = train_model(tenant=tenant)  # in this process: v1 is active
    configure(tenant, model_algorithms=["als"], model_factors=128, model_iterations=3000)
    run = request_training(tenant=tenant)
    wait_for(lambda: _run(run.pk).progress.get("iteration", 0) >= 5, timeout=60)
    children = live_worker.child_pids()
    assert children, live_worker.log()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    # Killed mid-fit: nothing registered, v1 still serving.
    killed = _run(run.pk)
    assert killed.model_version_id is None
    assert killed.status in {DurableJob.Status.RUNNING, DurableJob.Status.PENDING}
    active = ModelVersion.objects.for_tenant(tenant).get(status=ModelVersion.Status.ACTIVE)
    assert active.pk == first.pk
    assert ModelVersion.objects.for_tenant(tenant).count() == 1
    # Redelivered (acks_late + reject_on_worker_lost): the second attempt finishes.
    wait_for(lambda: _run(run.pk).status in {DurableJob.Status.SUCCEEDED,
                                              DurableJob.Status.FAILED}, timeout=120)
    done = _run(run.pk)
    assert done.attempts == 2, done.last_error
    assert done.status == DurableJob.Status.SUCCEEDED
    assert ModelVersion.objects.for_tenant(tenant).count() == 2
    assert done.model_version.number == 2
