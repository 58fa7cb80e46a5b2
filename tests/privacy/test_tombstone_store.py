"""The tombstone store outside the database: encrypted, append-only, de-duplicated, and
read back by ``replay_erasures`` after a restore loses the rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.events.models import Event
from apps.privacy.models import ErasureTombstone
from apps.privacy.services import replay_erasures, run_housekeeping
from apps.privacy.services.erasure import begin_erasure
from apps.privacy.services.tombstones import (
    append_tombstone,
    append_tombstones,
    read_tombstones,
    record_of,
    tenant_file,
)
from tests.factories.events import EventFactory
from tests.factories.privacy import make_request, seed_subject
from tests.factories.retention import tombstone_at


@pytest.fixture(autouse=True)
def store(settings, tmp_path):
    settings.TOMBSTONE_DIR = tmp_path / "tombstones"
    return settings.TOMBSTONE_DIR


def test_an_erasure_writes_its_tombstone_to_the_store_after_commit(
        tenant, django_capture_on_commit_callbacks):
    seed_subject(tenant)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        pr = make_request(tenant, "erasure", "alice@example.com", verification=None,
                          verified=False, channel="portal")
        begin_erasure(pr)
    assert not tenant_file(tenant.pk).exists()  # nothing before the commit
    for callback in pending:
        callback()
    [record] = read_tombstones(tenant=tenant)
    assert record.subject_key == pr.subject_key
    assert record.request_reference == pr.reference
    assert record.tenant_slug == tenant.slug


def test_the_store_round_trips_and_holds_no_key_in_the_clear(tenant, oncommit):
    seed_subject(tenant)
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    raw = tenant_file(tenant.pk).read_bytes()
    assert pr.subject_key.encode() not in raw
    assert pr.reference.encode() not in raw
    assert b"alice" not in raw
    assert tenant.slug.encode() not in raw
    assert oct(tenant_file(tenant.pk).stat().st_mode & 0o777) == "0o600"
    line = json.loads(raw.splitlines()[0])
    assert set(line) == {"v", "token"}
    [record] = read_tombstones(tenant=tenant)
    tombstone = ErasureTombstone.objects.for_tenant(tenant).get()
    assert record == record_of(tombstone)
    assert record.erased == tombstone.erased_at


def test_the_store_is_append_only_and_readers_de_duplicate(tenant):
    first = tombstone_at(tenant, "a" * 64, timezone.now() - timedelta(days=2))
    second = tombstone_at(tenant, "b" * 64, timezone.now() - timedelta(days=1))
    assert append_tombstone(first) == 1
    before = tenant_file(tenant.pk).read_bytes()
    assert append_tombstone(first) == 0  # re-writing never duplicates
    assert append_tombstones([record_of(second), record_of(second)]) == 1
    after = tenant_file(tenant.pk).read_bytes()
    assert after.startswith(before)  # only ever appended to
    # Two writers racing (or a copy of the file concatenated): readers keep one.
    with tenant_file(tenant.pk).open("ab") as racing:
        racing.write(before)
    keys = [r.subject_key for r in read_tombstones(tenant=tenant)]
    assert keys == ["a" * 64, "b" * 64]


def test_a_torn_line_or_a_foreign_key_is_skipped_not_fatal(tenant, settings):
    append_tombstone(tombstone_at(tenant, "a" * 64, timezone.now()))
    with tenant_file(tenant.pk).open("ab") as f:
        f.write(b'{"v": 1, "token": "gAAAA-torn')
    append_tombstone(tombstone_at(tenant, "b" * 64, timezone.now()))  # after the torn line
    assert [r.subject_key for r in read_tombstones(tenant=tenant)] == ["a" * 64, "b" * 64]
    settings.DISCREET_MASTER_KEY = "another-master-key-0123456789abcdef"
    assert read_tombstones(tenant=tenant) == []
    settings.DISCREET_MASTER_KEY_PREVIOUS = ["test-only-master-key-0123456789abcdef"]
    assert [r.subject_key for r in read_tombstones(tenant=tenant)] == ["a" * 64, "b" * 64]


def test_a_record_never_applies_to_another_tenant_reusing_the_id(tenant, other_tenant):
    record = record_of(tombstone_at(tenant, "a" * 64, timezone.now()))
    append_tombstones([record])
    tenant.created_at -= timedelta(seconds=1)  # a different tenant with the same id
    tenant.save(update_fields=["created_at"])
    assert read_tombstones(tenant=tenant) == []
    report = replay_erasures()
    assert report.unmatched == 1
    assert report.subjects == 0


def test_after_a_restore_replay_erases_and_recreates_the_tombstone(tenant, other_tenant,
                                                                   oncommit):
    seed_subject(tenant)
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    # What restoring a dump taken before the erasure does to these tables.
    ErasureTombstone.objects.for_tenant(tenant).delete()
    EventFactory.create_batch(3, tenant=tenant, subject_key=pr.subject_key)
    out = io.StringIO()
    call_command("replay_erasures", "--verify", stdout=out)
    assert "replayed 1 erased subject(s)" in out.getvalue()
    assert "events.event: 3 row(s) removed" in out.getvalue()
    assert "re-created 1 tombstone row(s)" in out.getvalue()
    assert "0 hits" in out.getvalue()
    assert not Event.objects.for_tenant(tenant).filter(subject_key=pr.subject_key).exists()
    assert ErasureTombstone.objects.for_tenant(tenant).get().privacy_request == pr
    out = io.StringIO()
    call_command("replay_erasures", stdout=out)  # idempotent
    assert "re-created 0 tombstone row(s)" in out.getvalue()
    assert ErasureTombstone.objects.for_tenant(tenant).count() == 1


def test_housekeeping_writes_tombstones_the_store_lacks(tenant):
    tombstone_at(tenant, "a" * 64, timezone.now())  # a row written before the store existed
    assert run_housekeeping()["tombstones_stored"] == 1
    assert run_housekeeping()["tombstones_stored"] == 0
    assert [r.subject_key for r in read_tombstones()] == ["a" * 64]


def test_retention_prunes_the_store_as_it_deletes_the_rows(tenant):
    now = timezone.now()
    old = record_of(tombstone_at(tenant, "a" * 64, now - timedelta(days=1200)))
    recent = record_of(tombstone_at(tenant, "b" * 64, now - timedelta(days=10)))
    append_tombstones([old, recent])
    ErasureTombstone.objects.for_tenant(tenant).delete()  # e.g. a restore
    report = replay_erasures()
    assert report.expired == 1  # past the default 1096 days: never brought back
    assert [key for _, key in report.erased] == ["b" * 64]
    assert list(ErasureTombstone.objects.for_tenant(tenant)
                .values_list("subject_key", flat=True)) == ["b" * 64]
    assert run_housekeeping()["tombstone_records_expired"] == 1
    assert [r.subject_key for r in read_tombstones(tenant=tenant)] == ["b" * 64]
    assert oct(tenant_file(tenant.pk).stat().st_mode & 0o777) == "0o600"
    assert run_housekeeping()["tombstone_records_expired"] == 0
    append_tombstones([record_of(tombstone_at(tenant, "c" * 64, now))])  # appends still land
    assert [r.subject_key for r in read_tombstones(tenant=tenant)] == ["b" * 64, "c" * 64]
