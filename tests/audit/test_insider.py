"""An insider with write access to the database, but not the master key, cannot rewrite,
reorder or truncate a tenant's audit chain unseen (issue 14, point 4)."""

from __future__ import annotations

import hashlib
import importlib
import json

import pytest
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit import services as audit
from apps.audit.heads import heads_path, read_heads
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import export_chain_head, verify_chain
from apps.audit.tasks import export_audit_heads_task

TABLE = AuditEvent._meta.db_table
HEAD_TABLE = AuditChainHead._meta.db_table


@pytest.fixture(autouse=True)
def heads_dir(settings, tmp_path):
    settings.AUDIT_HEADS_DIR = str(tmp_path / "audit-heads")
    return tmp_path / "audit-heads"


def _fill(tenant, n: int = 10) -> list[AuditEvent]:
    return [audit.record(tenant, "test.action", None, ("thing", i), {"n": i}) for i in range(n)]


def _sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _plain_hash(entry: AuditEvent) -> str:
    """What an insider without the key can compute: SHA-256 over the canonical content."""
    return hashlib.sha256(audit._entry_message(entry)).hexdigest()


def _rehash_plain_from(tenant, sequence: int) -> None:
    """Recompute, with plain SHA-256, the hash of every entry from ``sequence`` on (and
    their links), then point the database head at the new last hash: a full rewrite."""
    entries = list(AuditEvent.objects.for_tenant(tenant).order_by("sequence"))
    prev = entries[sequence - 2].entry_hash if sequence > 1 else audit.GENESIS_HASH
    for entry in entries[sequence - 1:]:
        entry.prev_hash = prev
        entry.entry_hash = _plain_hash(entry)
        _sql(f"UPDATE {TABLE} SET prev_hash = %s, entry_hash = %s WHERE id = %s",
             [entry.prev_hash, entry.entry_hash, entry.pk])
        prev = entry.entry_hash
    _sql(f"UPDATE {HEAD_TABLE} SET last_hash = %s WHERE tenant_id = %s", [prev, tenant.pk])


def _verify_command(tenant, capsys) -> str:
    with pytest.raises(CommandError):
        call_command("verify_audit_chain", tenant=tenant.slug)
    return capsys.readouterr().out


def test_an_untouched_chain_passes_against_its_exported_head(tenant, capsys):
    _fill(tenant)
    export = export_chain_head(tenant=tenant)
    assert (export.written, export.head.sequence, export.head.count) == (True, 10, 10)
    _fill(tenant, 2)  # entries after the export are fine
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.anchor.sequence) == (True, 10)
    call_command("verify_audit_chain", tenant=tenant.slug)
    assert "intact (12 entries), matches the head exported at" in capsys.readouterr().out


def test_an_entry_altered_and_every_later_hash_recomputed_with_sha256_is_named(tenant, capsys):
    _fill(tenant)
    _sql(f"UPDATE {TABLE} SET details = %s WHERE tenant_id = %s AND sequence = 4",
         [json.dumps({"n": 999}), tenant.pk])
    _rehash_plain_from(tenant, 4)
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 4)
    assert "altered" in report.problem
    assert "BROKEN at entry #4" in _verify_command(tenant, capsys)


def test_the_verification_job_names_the_altered_entry(tenant, django_capture_on_commit_callbacks):
    _fill(tenant)
    _sql(f"UPDATE {TABLE} SET action = %s WHERE tenant_id = %s AND sequence = 7",
         ["test.forged", tenant.pk])
    _rehash_plain_from(tenant, 7)
    with django_capture_on_commit_callbacks(execute=True):  # tasks run eagerly in unit tests
        job = audit.request_chain_verification(tenant=tenant)
    job.refresh_from_db()
    assert (job.intact, job.first_broken_sequence) == (False, 7)


def test_deleting_the_last_three_entries_after_an_export_is_caught(tenant, capsys):
    entries = _fill(tenant)
    assert export_chain_head(tenant=tenant).written
    _sql(f"DELETE FROM {TABLE} WHERE tenant_id = %s AND sequence > 7", [tenant.pk])
    # The insider also rolls the database head back to the new last entry.
    _sql(f"UPDATE {HEAD_TABLE} SET last_sequence = 7, last_hash = %s WHERE tenant_id = %s",
         [entries[6].entry_hash, tenant.pk])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 8)
    assert "#8..#10 are missing" in report.problem
    assert "truncated" in report.problem
    assert "BROKEN at entry #8" in _verify_command(tenant, capsys)
    # A broken chain is never exported (that would bless the truncation).
    assert not export_chain_head(tenant=tenant).written
    assert len(read_heads(tenant.pk)) == 1


def test_a_reordered_pair_is_named(tenant):
    _fill(tenant)
    # Swap entries #3 and #4 (through a free sequence number: it is unique per tenant).
    for old, new in ((3, 1000), (4, 3), (1000, 4)):
        _sql(f"UPDATE {TABLE} SET sequence = %s WHERE tenant_id = %s AND sequence = %s",
             [new, tenant.pk, old])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 3)


def test_a_forged_head_line_is_reported(tenant, heads_dir, capsys):
    entries = _fill(tenant)
    export_chain_head(tenant=tenant)
    path = heads_path(tenant.pk)
    line = json.loads(path.read_text().splitlines()[0])
    # A forger claims an earlier head (to cover a truncation) and re-signs it without the key.
    line.update(sequence=5, hash=entries[4].entry_hash, signature="0" * 64)
    with path.open("a") as file:
        file.write(json.dumps(line) + "\n")
    report = verify_chain(tenant=tenant)
    assert not report.intact
    assert "line 2" in report.problem
    assert "bad signature" in report.problem
    assert "BROKEN: exported head line 2" in _verify_command(tenant, capsys)


def test_a_head_line_of_another_tenant_is_reported(tenant, other_tenant):
    _fill(tenant, 2)
    _fill(other_tenant, 2)
    export_chain_head(tenant=other_tenant)
    heads_path(tenant.pk).write_text(heads_path(other_tenant.pk).read_text())
    report = verify_chain(tenant=tenant)
    assert not report.intact
    assert "names tenant" in report.problem


def test_export_is_idempotent_and_appends_only_new_heads(tenant, other_tenant, heads_dir):
    _fill(tenant, 3)
    assert export_audit_heads_task() == 1  # other_tenant has no entries: nothing to export
    assert export_audit_heads_task() == 0
    audit.record(tenant, "test.more")
    assert export_audit_heads_task() == 1
    heads = read_heads(tenant.pk)
    assert [(h.sequence, h.count) for h in heads] == [(3, 3), (4, 4)]
    assert heads[-1].entry_id == AuditEvent.objects.for_tenant(tenant).get(sequence=4).pk
    assert sorted(p.name for p in heads_dir.iterdir()) == [f"tenant-{tenant.pk}.jsonl"]


def test_the_export_command_reports_and_refuses_a_broken_chain(tenant, other_tenant, capsys):
    _fill(tenant, 3)
    _fill(other_tenant, 3)
    call_command("export_audit_heads")
    out = capsys.readouterr().out
    assert f"{tenant.slug}: head #3 exported" in out
    call_command("export_audit_heads", tenant=tenant.slug)
    assert "unchanged since the last export" in capsys.readouterr().out
    _sql(f"UPDATE {TABLE} SET action = %s WHERE tenant_id = %s AND sequence = 2",
         ["test.forged", other_tenant.pk])
    with pytest.raises(CommandError):
        call_command("export_audit_heads")
    assert f"{other_tenant.slug}: BROKEN at entry #2" in capsys.readouterr().out


def test_an_entry_slipped_in_past_the_head_is_named(tenant):
    entries = _fill(tenant, 3)
    forged = AuditEvent.objects.for_tenant(tenant).get(pk=entries[-1].pk)
    forged.pk, forged.sequence, forged.prev_hash = None, 4, entries[-1].entry_hash
    forged.entry_hash = _plain_hash(forged)
    forged.save()
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 4)


# --- Chains written before keyed hashes ----------------------------------------------------

def _make_legacy(tenant) -> None:
    """Turn the tenant's chain into one written before keyed hashes (every entry plain
    SHA-256), and switch it as migration 0005 does."""
    _rehash_plain_from(tenant, 1)
    migration = importlib.import_module("apps.audit.migrations.0005_keyed_chain")
    migration.switch_existing_chains(django_apps, None)


def test_a_chain_written_before_keyed_hashes_still_verifies_and_continues_keyed(tenant):
    _fill(tenant, 4)
    _make_legacy(tenant)
    assert AuditChainHead.objects.for_tenant(tenant).get().keyed_from_sequence == 5
    assert verify_chain(tenant=tenant).intact
    entry = audit.record(tenant, "after.switch")
    assert entry.entry_hash != _plain_hash(entry)
    assert verify_chain(tenant=tenant).checked_entries == 5
    # A legacy entry is still checked (with its plain hash).
    _sql(f"UPDATE {TABLE} SET action = %s WHERE tenant_id = %s AND sequence = 2",
         ["test.forged", tenant.pk])
    assert verify_chain(tenant=tenant).first_broken_sequence == 2


def test_declaring_keyed_entries_plain_breaks_the_head_seal(tenant):
    _fill(tenant, 4)
    _make_legacy(tenant)
    _fill(tenant, 3)
    # Downgrade: move the switch past the end and rewrite everything with plain SHA-256.
    _sql(f"UPDATE {HEAD_TABLE} SET keyed_from_sequence = 100 WHERE tenant_id = %s", [tenant.pk])
    _sql(f"UPDATE {TABLE} SET action = %s WHERE tenant_id = %s AND sequence = 6",
         ["test.forged", tenant.pk])
    _rehash_plain_from(tenant, 6)
    report = verify_chain(tenant=tenant)
    assert not report.intact
    assert "seal" in report.problem


def test_hiding_the_oldest_entries_behind_a_forged_checkpoint_breaks_the_seal(tenant):
    entries = _fill(tenant, 5)
    _sql(f"DELETE FROM {TABLE} WHERE tenant_id = %s AND sequence <= 2", [tenant.pk])
    _sql(f"UPDATE {HEAD_TABLE} SET pruned_through_sequence = 2, pruned_through_hash = %s "
         "WHERE tenant_id = %s", [entries[1].entry_hash, tenant.pk])
    report = verify_chain(tenant=tenant)
    assert not report.intact
    assert "seal" in report.problem


def test_a_previous_master_key_still_verifies_after_rotation(tenant, settings):
    _fill(tenant, 3)
    export_chain_head(tenant=tenant)
    settings.DISCREET_MASTER_KEY_PREVIOUS = [settings.DISCREET_MASTER_KEY]
    settings.DISCREET_MASTER_KEY = "a-new-master-key-0123456789abcdef"
    assert verify_chain(tenant=tenant).intact
    _fill(tenant, 2)
    assert export_chain_head(tenant=tenant).written
    assert verify_chain(tenant=tenant).intact
    settings.DISCREET_MASTER_KEY_PREVIOUS = []
    assert not verify_chain(tenant=tenant).intact


def test_beat_exports_heads_daily_before_the_nightly_verification(settings):
    from platform_site.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["export-audit-heads"]
    assert entry["task"] in app.tasks
    verify = settings.CELERY_BEAT_SCHEDULE["verify-audit-chains"]["schedule"]
    assert (entry["schedule"].hour, verify.hour) == ({3}, {3})
    assert min(entry["schedule"].minute) < min(verify.minute)


def test_owners_get_each_new_head_by_mail_when_enabled(tenant, settings, mailoutbox):
    from tests.factories.tenants import MembershipFactory

    owner = MembershipFactory(tenant=tenant, role="owner").user
    MembershipFactory(tenant=tenant, role="viewer")
    _fill(tenant, 2)
    export_chain_head(tenant=tenant)
    assert mailoutbox == []  # off by default
    settings.AUDIT_HEADS_MAIL_OWNERS = True
    newest = audit.record(tenant, "test.more")  # after the memberships' anchors
    export_chain_head(tenant=tenant)
    export_chain_head(tenant=tenant)  # unchanged: neither written nor mailed again
    [mail] = mailoutbox
    assert mail.to == [owner.email]
    assert f"entry #{newest.sequence}" in mail.subject
    assert heads_path(tenant.pk).read_text().splitlines()[-1] in mail.body
