from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit import services as audit
from apps.audit.models import AuditEvent, SubjectAuditToken
from apps.audit.services import verify_chain


def _fill(tenant, n: int = 5) -> list[AuditEvent]:
    return [audit.record(tenant, "test.action", None, ("thing", i), {"n": i}) for i in range(n)]


def _sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_entries_form_an_intact_chain_per_tenant(tenant, other_tenant):
    entries = _fill(tenant)
    _fill(other_tenant, 3)
    assert [e.sequence for e in entries] == [1, 2, 3, 4, 5]
    assert entries[1].prev_hash == entries[0].entry_hash
    assert verify_chain(tenant=tenant).intact
    assert verify_chain(tenant=other_tenant).checked_entries == 3


def test_an_updated_row_breaks_the_chain_and_is_named(tenant, capsys):
    entries = _fill(tenant)
    _sql(f"UPDATE {AuditEvent._meta.db_table} SET action = %s WHERE id = %s",
         ["test.forged", entries[2].pk])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 3)
    with pytest.raises(CommandError):
        call_command("verify_audit_chain", tenant=tenant.slug)
    assert "BROKEN at entry #3" in capsys.readouterr().out


def test_a_rehashed_forgery_is_caught_at_the_next_link(tenant):
    entries = _fill(tenant)
    forged = AuditEvent.objects.for_tenant(tenant).get(pk=entries[1].pk)
    forged.details = {"n": 999}
    _sql(f"UPDATE {AuditEvent._meta.db_table} SET details = %s, entry_hash = %s WHERE id = %s",
         ['{"n": 999}', audit.compute_entry_hash(forged), forged.pk])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 3)


def test_a_deleted_middle_row_is_named(tenant):
    entries = _fill(tenant)
    _sql(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [entries[1].pk])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 2)
    assert "missing" in report.problem


def test_a_deleted_tail_is_detected(tenant):
    entries = _fill(tenant)
    _sql(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [entries[-1].pk])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 5)


def test_the_command_passes_on_intact_chains(tenant, capsys):
    _fill(tenant)
    call_command("verify_audit_chain")
    assert f"{tenant.slug}: intact (5 entries)" in capsys.readouterr().out


@pytest.mark.parametrize("details", [{"email": "a@b.c"}, {"nested": {"subject": "x"}},
                                     {"items": [{"ip": "1.2.3.4"}]}])
def test_raw_identifier_fields_are_refused(tenant, details):
    with pytest.raises(ValueError, match="raw identifier"):
        audit.record(tenant, "test.action", details=details)
    assert not AuditEvent.objects.for_tenant(tenant).exists()


def test_erasing_the_subject_token_unlinks_entries_and_keeps_the_chain(tenant):
    entry = audit.record(tenant, "consent.recorded", subject_key="sk-1")
    assert entry.subject_token
    assert entry.subject_token != "sk-1"
    assert audit.record(tenant, "x", subject_key="sk-1").subject_token == entry.subject_token
    assert audit.forget_subject_token(tenant=tenant, subject_key="sk-1") == 1
    assert not SubjectAuditToken.all_tenants.filter(subject_key="sk-1").exists()
    assert verify_chain(tenant=tenant).intact
    assert not AuditEvent.all_tenants.filter(subject_token="sk-1").exists()


def test_pruning_old_entries_keeps_the_rest_of_the_chain_verifiable(tenant):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    start = timezone.now() - timedelta(days=1200)
    with time_machine.travel(start, tick=False):
        _fill(tenant, 4)
    _fill(tenant, 2)
    deleted = audit.prune_audit_events(tenant=tenant, before=start + timedelta(days=1),
                                       batch_size=3)
    assert deleted == 4
    assert list(AuditEvent.objects.for_tenant(tenant).values_list("sequence", flat=True)) == [5, 6]
    assert verify_chain(tenant=tenant).intact
    audit.record(tenant, "after.pruning")
    assert verify_chain(tenant=tenant).checked_entries == 3


def test_the_newest_entry_is_never_pruned(tenant):
    from datetime import timedelta

    from django.utils import timezone

    _fill(tenant, 2)
    assert audit.prune_audit_events(tenant=tenant, before=timezone.now() + timedelta(1)) == 1
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.checked_entries) == (True, 1)


def test_deleting_an_entry_after_a_pruning_checkpoint_is_still_caught(tenant):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    start = timezone.now() - timedelta(days=1200)
    with time_machine.travel(start, tick=False):
        _fill(tenant, 2)
    entries = _fill(tenant, 3)
    audit.prune_audit_events(tenant=tenant, before=start + timedelta(days=1))
    _sql(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [entries[0].pk])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, 3)
