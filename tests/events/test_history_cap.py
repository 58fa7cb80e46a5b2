"""The per-subject history cap: newest N events kept, in batches, by an idempotent task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.events.models import Event, HistoryCapJob, HistoryCapStatus
from apps.events.services import enforce_history_cap, ingest_events
from apps.events.services.history import subjects_over_cap
from apps.events.tasks import enforce_history_cap_task
from tests.factories.events import ItemFactory, event_payload, grant_consent


def make_history(tenant, subject_key: str, count: int) -> list[Event]:
    """``count`` events, one hour apart, the newest first in the returned list."""
    item = ItemFactory(tenant=tenant)
    now = timezone.now()
    events = [Event(tenant=tenant, event_id=f"{subject_key[:8]}-{n}", subject_key=subject_key,
                    item=item, type="view", occurred_at=now - timedelta(hours=n))
              for n in range(count)]
    Event.objects.bulk_create(events)
    return events


def kept_ids(tenant, subject_key: str) -> list[str]:
    return list(Event.objects.for_tenant(tenant).filter(subject_key=subject_key)
                .order_by("-occurred_at").values_list("event_id", flat=True))


def test_only_the_newest_events_of_a_subject_are_kept(tenant):
    events = make_history(tenant, "k" * 64, 8)
    make_history(tenant, "q" * 64, 3)

    report = enforce_history_cap(tenant=tenant, subject_keys=["k" * 64, "q" * 64], cap=5)

    assert kept_ids(tenant, "k" * 64) == [e.event_id for e in events[:5]]
    assert len(kept_ids(tenant, "q" * 64)) == 3
    assert (report.subjects_checked, report.subjects_capped, report.events_deleted) == (2, 1, 3)


def test_the_default_cap_is_200_and_a_tenant_setting_changes_it(tenant):
    make_history(tenant, "k" * 64, 203)

    assert enforce_history_cap(tenant=tenant, subject_keys=["k" * 64]).events_deleted == 3

    tenant.settings = {"event_history_cap": 50}
    tenant.save()
    assert enforce_history_cap(tenant=tenant, subject_keys=["k" * 64]).events_deleted == 150


def test_a_second_run_deletes_nothing_and_writes_no_audit_entry(tenant):
    make_history(tenant, "k" * 64, 7)
    enforce_history_cap(tenant=tenant, subject_keys=["k" * 64], cap=5)

    again = enforce_history_cap(tenant=tenant, subject_keys=["k" * 64], cap=5)

    assert again.events_deleted == 0
    assert AuditEvent.objects.for_tenant(tenant).filter(
        action="events.history_capped").count() == 1


def test_a_run_leaves_one_audit_entry_with_counts_and_no_subject(tenant):
    for key in ("a" * 64, "b" * 64):
        make_history(tenant, key, 4)

    enforce_history_cap(tenant=tenant, subject_keys=["a" * 64, "b" * 64], cap=1)

    entry = AuditEvent.objects.for_tenant(tenant).get(action="events.history_capped")
    assert entry.details == {"cap": 1, "subjects_capped": 2, "events_deleted": 6}
    assert entry.subject_token == ""
    assert "a" * 64 not in str(entry.details)


def test_without_subjects_every_subject_of_the_tenant_is_capped(tenant):
    for key in ("a" * 64, "b" * 64, "c" * 64):
        make_history(tenant, key, 4)

    report = enforce_history_cap(tenant=tenant, cap=2)

    assert report.events_deleted == 6
    assert Event.objects.for_tenant(tenant).count() == 6


def test_progress_is_recorded_for_the_admin(tenant):
    make_history(tenant, "k" * 64, 4)

    enforce_history_cap(tenant=tenant, subject_keys=["k" * 64], cap=3)
    enforce_history_cap(tenant=tenant, subject_keys=["k" * 64], cap=1)

    status = HistoryCapStatus.objects.for_tenant(tenant).get()
    assert (status.runs_total, status.events_deleted_total, status.last_events_deleted,
            status.last_cap) == (2, 3, 2, 1)


def test_another_tenants_subjects_are_never_touched(tenant, other_tenant):
    make_history(other_tenant, "k" * 64, 6)
    make_history(tenant, "k" * 64, 6)

    enforce_history_cap(tenant=tenant, cap=2)

    assert Event.objects.for_tenant(other_tenant).count() == 6
    assert Event.objects.for_tenant(tenant).count() == 2


def test_ingestion_records_a_durable_job_and_sends_it_after_commit(
        tenant, mocker, django_capture_on_commit_callbacks):
    send = mocker.patch.object(enforce_history_cap_task, "apply_async")
    grant_consent(tenant, "alice")
    alice = event_payload("alice")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ingest_events(tenant=tenant, events=[alice, event_payload("bob")])
        send.assert_not_called()  # not before the events are committed

    job = HistoryCapJob.objects.for_tenant(tenant).get()
    # The batch's stored events, by their ids: no subject key on the job row.
    assert job.event_ids == [alice["event_id"]]
    assert job.status == HistoryCapJob.Status.PENDING
    assert job.enqueued_at is not None
    for callback in callbacks:
        callback()
    send.assert_called_once_with(args=[tenant.pk, job.pk])


def test_nothing_is_enqueued_when_nothing_was_stored(tenant, mocker,
                                                     django_capture_on_commit_callbacks):
    send = mocker.patch.object(enforce_history_cap_task, "apply_async")

    with django_capture_on_commit_callbacks(execute=True):
        ingest_events(tenant=tenant, events=[event_payload("nobody-consented")])

    send.assert_not_called()
    assert not HistoryCapJob.objects.for_tenant(tenant).exists()


def test_a_lost_message_is_resent_by_the_sweeper_and_the_cap_applied(
        tenant, mocker, django_capture_on_commit_callbacks):
    """Before: a lost message left the batch's subjects over their cap until their next
    batch. The job row outlives the message; the sweeper sends it again."""
    tenant.settings = {"event_history_cap": 2}
    tenant.save()
    key = grant_consent(tenant, "alice")
    now = timezone.now()
    events = [event_payload("alice", occurred_at=now - timedelta(minutes=n)) for n in range(4)]
    lost = mocker.patch.object(enforce_history_cap_task, "apply_async")  # the broker drops it
    with django_capture_on_commit_callbacks(execute=True):
        ingest_events(tenant=tenant, events=events)
    lost.assert_called_once()
    mocker.stopall()
    assert len(kept_ids(tenant, key)) == 4

    from apps.core.jobs import lost_after, sweep_stuck_jobs

    later = timezone.now() + lost_after(HistoryCapJob) + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        counts = sweep_stuck_jobs(now=later, live=None)
    assert counts["requeued"] == 1
    assert kept_ids(tenant, key) == [e["event_id"] for e in events[:2]]
    job = HistoryCapJob.objects.for_tenant(tenant).get()
    assert job.status == HistoryCapJob.Status.SUCCEEDED
    assert job.event_ids == []  # done: the row keeps counts only
    assert job.progress["events_deleted"] == 2


def test_ingestion_then_the_task_caps_the_history(tenant, django_capture_on_commit_callbacks):
    tenant.settings = {"event_history_cap": 3}
    tenant.save()
    key = grant_consent(tenant, "alice")
    now = timezone.now()
    events = [event_payload("alice", occurred_at=now - timedelta(minutes=n)) for n in range(5)]

    with django_capture_on_commit_callbacks(execute=True):
        ingest_events(tenant=tenant, events=events)

    assert kept_ids(tenant, key) == [e["event_id"] for e in events[:3]]


def test_the_task_ignores_a_vanished_job_or_an_inactive_tenant(tenant, caplog):
    events = make_history(tenant, "k" * 64, 3)
    job = HistoryCapJob.objects.create(tenant=tenant, event_ids=[e.event_id for e in events])
    tenant.is_active = False
    tenant.save()

    enforce_history_cap_task(tenant.pk, job.pk)
    enforce_history_cap_task(tenant.pk, 10**9)

    assert Event.objects.for_tenant(tenant).count() == 3
    assert "events.history_cap_tenant_missing" in caplog.text


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_over_cap_count_is_answerable_from_the_subject_index_alone(tenant):
    """With every other access path priced out, the count must still be an index-only scan
    of (tenant, subject_key, occurred_at): a column outside that index (COUNT(id) did) would
    make every run read each counted event's heap page."""
    make_history(tenant, "k" * 64, 3)
    counted = subjects_over_cap(
        Event.objects.for_tenant(tenant).filter(subject_key__in=["k" * 64, "q" * 64]), 2)
    with connection.cursor() as cursor:
        for method in ("seqscan", "bitmapscan", "indexscan"):
            cursor.execute(f"SET LOCAL enable_{method} = off")
    plan = counted.explain()

    assert "Index Only Scan using event_subject_time_idx" in plan, plan
    assert list(counted) == ["k" * 64]
