"""The daily run: one per tenant and day at the tenant's run time (UTC), through a durable
job that a worker runs and the sweeper resends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from apps.core.jobs import DurableJob, lost_after, sweep_stuck_jobs
from apps.events.models import Event
from apps.retention.models import RetentionRun
from apps.retention.selectors import (
    default_run_time,
    get_next_run_at,
    latest_slot,
    pause_ratio,
)
from apps.retention.services import schedule_due_retention_runs, start_retention_run
from tests.factories.retention import at, events_at

DAY = datetime(2031, 3, 1, tzinfo=UTC)


def _runs(tenant):
    return RetentionRun.objects.for_tenant(tenant)


def test_beat_checks_for_due_runs_every_quarter_of_an_hour():
    entry = django_settings.CELERY_BEAT_SCHEDULE["schedule-retention-runs"]
    assert entry["task"] == "apps.retention.tasks.schedule_retention_runs_task"


def test_one_run_per_tenant_and_day_once_its_time_has_passed(tenant, other_tenant,
                                                            django_capture_on_commit_callbacks):
    with at(DAY + timedelta(hours=3, minutes=29)):
        assert latest_slot(tenant=tenant) == DAY - timedelta(days=1) + timedelta(hours=3,
                                                                                 minutes=30)
    with at(DAY + timedelta(hours=3, minutes=31)), django_capture_on_commit_callbacks():
        assert schedule_due_retention_runs() == 2
        assert schedule_due_retention_runs() == 0  # idempotent within the day
    run = _runs(tenant).get()
    assert run.trigger == RetentionRun.Trigger.SCHEDULE
    assert run.scheduled_for == DAY + timedelta(hours=3, minutes=30)
    assert run.enqueued_at is not None


def test_the_run_time_comes_from_the_tenant_then_the_setting(tenant, other_tenant, settings):
    settings.RETENTION_RUN_TIME = "22:00"
    tenant.settings = {"retention_run_time": "01:15"}
    tenant.save()
    assert default_run_time().hour == 22
    with at(DAY + timedelta(hours=2)):
        schedule_due_retention_runs()
    assert _runs(tenant).get().scheduled_for == DAY + timedelta(hours=1, minutes=15)
    assert _runs(other_tenant).get().scheduled_for == DAY - timedelta(hours=2)


def test_the_run_time_can_come_from_the_environment(monkeypatch, settings):
    del settings.RETENTION_RUN_TIME  # not set: falls back to the environment
    monkeypatch.setenv("RETENTION_RUN_TIME", "04:45")
    assert (default_run_time().hour, default_run_time().minute) == (4, 45)
    monkeypatch.setenv("RETENTION_RUN_TIME", "not a time")
    assert (default_run_time().hour, default_run_time().minute) == (3, 30)


def test_the_pause_between_batches_is_configurable(monkeypatch, settings):
    assert pause_ratio() == 0  # tests/retention/conftest.py
    del settings.RETENTION_PAUSE_RATIO
    assert pause_ratio() == 1.0
    monkeypatch.setenv("RETENTION_PAUSE_RATIO", "0.5")
    assert pause_ratio() == 0.5
    monkeypatch.setenv("RETENTION_PAUSE_RATIO", "-3")
    assert pause_ratio() == 1.0


def test_no_new_run_while_one_is_unfinished(tenant):
    with at(DAY):
        unfinished = start_retention_run(tenant=tenant, trigger=RetentionRun.Trigger.ADMIN,
                                         enqueue=False)
    with at(DAY + timedelta(days=1, hours=4)):
        schedule_due_retention_runs()
    assert list(_runs(tenant)) == [unfinished]


def test_next_run_is_the_pending_slot_or_tomorrows(tenant):
    with at(DAY + timedelta(hours=5)):
        assert get_next_run_at(tenant=tenant) == DAY + timedelta(hours=3, minutes=30)
        start_retention_run(tenant=tenant, trigger=RetentionRun.Trigger.SCHEDULE,
                            scheduled_for=DAY + timedelta(hours=3, minutes=30), enqueue=False)
        assert get_next_run_at(tenant=tenant) == DAY + timedelta(days=1, hours=3, minutes=30)


def test_the_worker_runs_the_job_after_commit(tenant, django_capture_on_commit_callbacks):
    events_at(tenant, "sk-worker", DAY - timedelta(days=400), n=3)
    with at(DAY), django_capture_on_commit_callbacks(execute=True):
        run = start_retention_run(tenant=tenant, trigger=RetentionRun.Trigger.ADMIN)

    run.refresh_from_db()
    assert run.status == DurableJob.Status.SUCCEEDED
    assert not Event.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("status", [DurableJob.Status.RUNNING, DurableJob.Status.PENDING])
def test_the_sweeper_resends_a_run_whose_worker_was_lost(tenant, status, mocker):
    mocker.patch("apps.retention.tasks.enforce_retention_task.apply_async")
    with at(DAY):
        run = start_retention_run(tenant=tenant, trigger=RetentionRun.Trigger.ADMIN,
                                  enqueue=False)
        RetentionRun.objects.for_tenant(tenant).filter(pk=run.pk).update(
            status=status, heartbeat_at=DAY, enqueued_at=DAY)
    with at(DAY + lost_after(RetentionRun) + timedelta(seconds=1)), transaction.atomic():
        counts = sweep_stuck_jobs()
    assert counts["requeued"] >= 1
    run.refresh_from_db()
    assert run.status == DurableJob.Status.PENDING
    assert run.enqueued_at > DAY
