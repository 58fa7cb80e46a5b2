"""The per-subject history cap: newest N events kept, in batches, by an idempotent task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.events.models import Event, HistoryCapStatus
from apps.events.services import enforce_history_cap, ingest_events
from apps.events.services.history import subjects_over_cap
from apps.events.tasks import enforce_history_cap_task
from apps.tenants.services import pseudonymize
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


def test_ingestion_enqueues_the_cap_after_commit_with_the_stored_subjects(
        tenant, mocker, django_capture_on_commit_callbacks):
    delay = mocker.patch("apps.events.services.ingestion.enforce_history_cap_task.delay")
    grant_consent(tenant, "alice")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ingest_events(tenant=tenant, events=[event_payload("alice"), event_payload("bob")])
        delay.assert_not_called()  # not before the events are committed

    for callback in callbacks:
        callback()
    delay.assert_called_once_with(tenant.pk, [pseudonymize(tenant, "alice")])


def test_nothing_is_enqueued_when_nothing_was_stored(tenant, mocker,
                                                     django_capture_on_commit_callbacks):
    delay = mocker.patch("apps.events.services.ingestion.enforce_history_cap_task.delay")

    with django_capture_on_commit_callbacks(execute=True):
        ingest_events(tenant=tenant, events=[event_payload("nobody-consented")])

    delay.assert_not_called()


def test_ingestion_then_the_task_caps_the_history(tenant, django_capture_on_commit_callbacks):
    tenant.settings = {"event_history_cap": 3}
    tenant.save()
    key = grant_consent(tenant, "alice")
    now = timezone.now()
    events = [event_payload("alice", occurred_at=now - timedelta(minutes=n)) for n in range(5)]

    with django_capture_on_commit_callbacks(execute=True):
        ingest_events(tenant=tenant, events=events)

    assert kept_ids(tenant, key) == [e["event_id"] for e in events[:3]]


def test_the_task_ignores_a_vanished_or_inactive_tenant(tenant, caplog):
    tenant.is_active = False
    tenant.save()
    make_history(tenant, "k" * 64, 3)

    enforce_history_cap_task(tenant.pk, ["k" * 64])
    enforce_history_cap_task(10**9)

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
