"""Enforcement: boundaries with frozen time, what each category deletes, receipts, and runs
that are interrupted and started again (issue 7, acceptance)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection

from apps.audit.models import AuditEvent, SubjectAuditToken
from apps.audit.services import verify_chain
from apps.consent.models import ConsentRecord, ConsentState, SubjectState
from apps.core.jobs import DurableJob
from apps.events.models import Event
from apps.modeling.models import ModelVersion
from apps.privacy.models import DataExport, ErasureTombstone, PrivacyRequest
from apps.retention.categories import retention_categories
from apps.retention.models import RetentionReceipt, RetentionRun
from apps.retention.selectors import preview_retention, run_checkpoints
from apps.retention.services import (
    claim_and_execute_retention_run,
    enforce_retention_now,
    set_retention_policy,
)
from tests.factories.retention import (
    at,
    audit_entry_at,
    closed_request_at,
    consent_at,
    events_at,
    export_at,
    model_version,
    tombstone_at,
    webhook_delivery_at,
)

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
YEAR = timedelta(days=365)
LEDGER = timedelta(days=1826)
AUDIT = timedelta(days=1096)


def _ids(queryset: Any) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def _enforce(tenant: Any, when: datetime = NOW) -> dict[str, int]:
    with at(when):
        return enforce_retention_now(tenant=tenant)


# --- Boundaries ---------------------------------------------------------------------------


def test_an_event_one_second_inside_its_period_stays_and_one_second_past_goes(tenant):
    inside = events_at(tenant, "sk-events", NOW - YEAR + SECOND)
    on_the_cutoff = events_at(tenant, "sk-events", NOW - YEAR)
    past = events_at(tenant, "sk-events", NOW - YEAR - SECOND)

    deleted = _enforce(tenant)

    remaining = _ids(Event.objects.for_tenant(tenant))
    assert remaining == {e.pk for e in inside + on_the_cutoff}
    assert not remaining & {e.pk for e in past}
    assert deleted["events"] == 1


def test_a_period_set_in_hours_is_honoured_to_the_second(tenant):
    set_retention_policy(tenant=tenant, category="events", hours=2)
    inside = events_at(tenant, "sk-hours", NOW - timedelta(hours=2) + SECOND)
    events_at(tenant, "sk-hours", NOW - timedelta(hours=2) - SECOND)

    assert _enforce(tenant)["events"] == 1
    assert _ids(Event.objects.for_tenant(tenant)) == {e.pk for e in inside}


def test_a_ledger_goes_one_second_after_five_years_since_the_subjects_last_change(tenant):
    kept = consent_at(tenant, "inside", NOW - LEDGER + SECOND)
    gone = consent_at(tenant, "past", NOW - LEDGER - SECOND)
    # An old decision of a subject who changed something since is still proof: kept.
    changed = consent_at(tenant, "changed-later", NOW - LEDGER - timedelta(days=30))
    consent_at(tenant, "changed-later", NOW - LEDGER + SECOND, granted=False)
    ledger = ConsentRecord.objects.for_tenant(tenant)
    rows = {key: ledger.filter(subject_key=key).count() for key in (kept, gone, changed)}

    deleted = _enforce(tenant)

    assert ledger.filter(subject_key=kept).count() == rows[kept]
    assert not ledger.filter(subject_key=gone).exists()
    assert ledger.filter(subject_key=changed).count() == rows[changed] > rows[kept]
    assert deleted["consent_ledger"] == rows[gone]


def test_an_audit_entry_one_second_past_three_years_goes_and_the_chain_still_verifies(tenant):
    past = audit_entry_at(tenant, NOW - AUDIT - SECOND)
    inside = audit_entry_at(tenant, NOW - AUDIT + SECOND)

    _enforce(tenant)

    entries = AuditEvent.objects.for_tenant(tenant)
    assert not entries.filter(pk=past.pk).exists()
    assert entries.filter(pk=inside.pk).exists()
    assert verify_chain(tenant=tenant).intact


def test_a_subject_inactive_one_second_past_the_events_period_is_removed_but_its_proof_kept(
        tenant):
    long_ago = NOW - YEAR - timedelta(days=30)
    active = consent_at(tenant, "active", long_ago)
    events_at(tenant, active, NOW - YEAR + SECOND)
    inactive = consent_at(tenant, "inactive", long_ago)
    events_at(tenant, inactive, NOW - YEAR - SECOND)
    recently_changed = consent_at(tenant, "changed", NOW - YEAR + SECOND)
    quiet = consent_at(tenant, "quiet", NOW - YEAR - SECOND)

    deleted = _enforce(tenant)

    def present(key: str) -> bool:
        return any(model.objects.for_tenant(tenant).filter(subject_key=key).exists()
                   for model in (ConsentState, SubjectState, SubjectAuditToken))

    assert present(active)
    assert present(recently_changed)
    assert not present(inactive)
    assert not present(quiet)
    assert not Event.objects.for_tenant(tenant).filter(subject_key=inactive).exists()
    # The ledger is proof, kept by its own rule (5 years after the last change).
    assert ConsentRecord.objects.for_tenant(tenant).filter(subject_key=inactive).exists()
    assert ConsentRecord.objects.for_tenant(tenant).filter(subject_key=quiet).exists()
    assert deleted["inactive_subjects"] == 2


def test_inactive_subjects_follow_the_events_period(tenant):
    set_retention_policy(tenant=tenant, category="events", days=30)
    key = consent_at(tenant, "a-month-ago", NOW - timedelta(days=30) - SECOND)

    assert _enforce(tenant)["inactive_subjects"] == 1
    assert not ConsentState.objects.for_tenant(tenant).filter(subject_key=key).exists()


def test_another_tenants_data_is_never_touched(tenant, other_tenant):
    old = NOW - LEDGER - YEAR
    theirs = consent_at(other_tenant, "theirs", old)
    their_events = events_at(other_tenant, theirs, old, n=3)
    their_entry = audit_entry_at(other_tenant, old)

    _enforce(tenant)

    assert _ids(Event.objects.for_tenant(other_tenant)) == {e.pk for e in their_events}
    assert ConsentState.objects.for_tenant(other_tenant).filter(subject_key=theirs).exists()
    assert ConsentRecord.objects.for_tenant(other_tenant).filter(subject_key=theirs).exists()
    assert AuditEvent.objects.for_tenant(other_tenant).filter(pk=their_entry.pk).exists()


# --- Receipts and batches -----------------------------------------------------------------


def test_each_category_leaves_a_receipt_in_the_audit_trail(tenant, settings):
    settings.RETENTION_BATCH_SIZE = 2
    events_at(tenant, "sk-receipt", NOW - YEAR - SECOND, n=5)

    _enforce(tenant)

    run = RetentionRun.objects.for_tenant(tenant).get()
    receipts = {r.details["category"]: r for r in
                AuditEvent.objects.for_tenant(tenant).filter(action="retention.receipt")}
    assert set(receipts) == {c.code for c in retention_categories()}
    events = receipts["events"].details
    assert events["deleted"] == events["rows_deleted"] == 5
    assert events["cutoff"] == (NOW - YEAR).isoformat()
    assert events["batches"] == 3  # 2 + 2 + 1 rows: at most batch_size per statement
    assert events["duration_seconds"] >= 0
    assert receipts["events"].target_id == str(run.pk)
    stored = RetentionReceipt.objects.for_tenant(tenant).get(run=run, category="events")
    assert (stored.deleted, stored.audit_sequence) == (5, receipts["events"].sequence)
    assert run.status == DurableJob.Status.SUCCEEDED


def test_no_delete_statement_touches_more_than_one_batch(tenant, settings):
    settings.RETENTION_BATCH_SIZE = 3
    events_at(tenant, "sk-batches", NOW - YEAR - SECOND, n=7)
    rowcounts: list[int] = []

    def spy(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if sql.startswith('DELETE FROM "events_event"'):
            rowcounts.append(context["cursor"].rowcount)
        return result

    with connection.execute_wrapper(spy):
        _enforce(tenant)

    assert rowcounts == [3, 3, 1]


# --- Dry run ------------------------------------------------------------------------------


def _mixed_history(tenant: Any) -> None:
    """Something to delete in every category, and something to keep in each."""
    old = NOW - LEDGER - timedelta(days=10)
    for n in range(3):
        key = consent_at(tenant, f"gone-{n}", old)
        events_at(tenant, key, old, n=2)
    kept = consent_at(tenant, "kept", NOW - timedelta(days=3))
    events_at(tenant, kept, NOW - timedelta(days=2), n=4)
    events_at(tenant, kept, NOW - YEAR - timedelta(days=2), n=3)
    audit_entry_at(tenant, NOW - AUDIT - timedelta(days=1))
    closed_request_at(tenant, "closed@example.com", NOW - timedelta(days=800))
    export_at(tenant, "exported@example.com", NOW - timedelta(days=9))
    export_at(tenant, "fresh-export@example.com", NOW - timedelta(days=1))
    tombstone_at(tenant, "e" * 64, NOW - AUDIT - timedelta(days=1))
    webhook_delivery_at(tenant, NOW - timedelta(days=31))
    webhook_delivery_at(tenant, NOW - timedelta(days=29))
    for number in range(1, 5):
        model_version(tenant, number, status="active" if number == 4 else "retired",
                      retention_since=NOW - YEAR)


def _snapshot(tenant: Any) -> dict[str, set[int]]:
    models = (Event, ConsentRecord, ConsentState, SubjectState, SubjectAuditToken, AuditEvent,
              RetentionRun, RetentionReceipt, PrivacyRequest, ErasureTombstone)
    snapshot = {m.__name__: _ids(m.objects.for_tenant(tenant)) for m in models}
    snapshot["exports on disk"] = _ids(DataExport.objects.for_tenant(tenant).filter(
        deleted_at__isnull=True))
    snapshot["artifacts"] = _ids(ModelVersion.objects.for_tenant(tenant).filter(
        artifact_destroyed_at__isnull=True))
    return snapshot


def test_a_dry_run_changes_nothing_and_reports_exactly_what_the_run_then_deletes(
        tenant, settings):
    settings.RETENTION_BATCH_SIZE = 2
    _mixed_history(tenant)
    before = _snapshot(tenant)

    with at(NOW):
        predicted = preview_retention(tenant=tenant)
    assert _snapshot(tenant) == before

    deleted = _enforce(tenant)

    assert deleted == predicted
    assert all(predicted.values()), predicted  # every category had something to delete
    after = _snapshot(tenant)
    assert len(before["Event"]) - len(after["Event"]) == predicted["events"]
    assert len(before["ConsentRecord"]) - len(after["ConsentRecord"]) == (
        predicted["consent_ledger"])
    with at(NOW):
        assert set(preview_retention(tenant=tenant).values()) == {0}


# --- Interrupted runs ---------------------------------------------------------------------


def _fail_on(table: str, nth: int) -> Callable:
    """A DB that dies on the ``nth`` DELETE from ``table`` (a killed worker, a lost link)."""
    seen = {"n": 0}

    def wrapper(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith(f'DELETE FROM "{table}"'):
            seen["n"] += 1
            if seen["n"] == nth:
                raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    return wrapper


def test_a_run_interrupted_halfway_and_started_again_deletes_the_rest_and_nothing_else(
        tenant, settings):
    settings.RETENTION_BATCH_SIZE = 4
    expired = events_at(tenant, "sk-resume", NOW - YEAR - timedelta(days=1), n=10)
    expiring_tomorrow = events_at(tenant, "sk-resume", NOW - YEAR + timedelta(days=1), n=5)

    with at(NOW), connection.execute_wrapper(_fail_on("events_event", nth=2)), \
            pytest.raises(OperationalError):
        enforce_retention_now(tenant=tenant)

    run = RetentionRun.objects.for_tenant(tenant).get()
    assert run.status == DurableJob.Status.PENDING
    assert run.attempts == 1
    assert dict(run_checkpoints(run))["events"]["deleted"] == 4
    assert Event.objects.for_tenant(tenant).count() == 11

    # Started again two days later: the run keeps the cutoffs it was created with.
    deleted = _enforce(tenant, NOW + timedelta(days=2))

    assert deleted["events"] == 6
    assert _ids(Event.objects.for_tenant(tenant)) == {e.pk for e in expiring_tomorrow}
    run.refresh_from_db()
    assert run.status == DurableJob.Status.SUCCEEDED
    assert run.attempts == 2
    receipt = RetentionReceipt.objects.for_tenant(tenant).get(run=run, category="events")
    assert receipt.deleted == len(expired)
    # The next run, with fresh cutoffs, takes what expired meanwhile.
    assert _enforce(tenant, NOW + timedelta(days=2))["events"] == 5


def test_a_run_interrupted_among_inactive_subjects_resumes_from_its_cursor(tenant, settings):
    settings.RETENTION_BATCH_SIZE = 1  # one subject per batch
    old = NOW - YEAR - timedelta(days=5)
    gone = {consent_at(tenant, f"quiet-{n}", old) for n in range(4)}
    kept = consent_at(tenant, "busy", old)
    events_at(tenant, kept, NOW - timedelta(days=1))

    with at(NOW), connection.execute_wrapper(_fail_on("consent_consentstate", nth=3)), \
            pytest.raises(OperationalError):
        enforce_retention_now(tenant=tenant)
    with at(NOW):
        assert preview_retention(tenant=tenant)["inactive_subjects"] == 2

    deleted = _enforce(tenant, NOW + timedelta(hours=1))

    assert deleted["inactive_subjects"] == 2
    states = set(ConsentState.objects.for_tenant(tenant).values_list("subject_key", flat=True))
    assert states == {kept}
    assert not states & gone
    run = RetentionRun.objects.for_tenant(tenant).get()
    assert RetentionReceipt.objects.for_tenant(tenant).get(
        run=run, category="inactive_subjects").deleted == 4


def test_a_finished_run_is_not_run_again(tenant):
    events_at(tenant, "sk-twice", NOW - YEAR - SECOND, n=2)
    _enforce(tenant)
    run = RetentionRun.objects.for_tenant(tenant).get()

    with at(NOW):
        assert claim_and_execute_retention_run(tenant_id=tenant.pk, run_id=run.pk) is None
    assert RetentionReceipt.objects.for_tenant(tenant).filter(run=run).count() == len(
        retention_categories())
    assert set(_enforce(tenant).values()) == {0}
