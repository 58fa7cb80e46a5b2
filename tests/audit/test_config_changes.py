"""Changes to API keys, memberships, purposes and settings (django-auditlog) are anchored in
the tenant's tamper-evident chain and shown to the tenant's owners in the admin (issue 14,
point 4)."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from apps.audit import config_changes
from apps.audit import services as audit
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import export_chain_head, verify_chain
from apps.consent.models import Purpose
from apps.tenants.models import ApiKey, Membership, Tenant
from tests.factories.consent import PrivacyNoticeFactory
from tests.factories.tenants import MembershipFactory, UserFactory, make_api_key

LOG_TABLE = LogEntry._meta.db_table
CHAIN_TABLE = AuditEvent._meta.db_table
HEAD_TABLE = AuditChainHead._meta.db_table


@pytest.fixture(autouse=True)
def heads_dir(settings, tmp_path):
    settings.AUDIT_HEADS_DIR = str(tmp_path / "audit-heads")


def _sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _anchors(tenant: Tenant) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_tenant(tenant)
                .filter(action=config_changes.CONFIG_CHANGED).order_by("sequence"))


def _log_entry(obj, action: int) -> LogEntry:
    return LogEntry.objects.get_for_object(obj).filter(action=action).latest("id")


def _anchor_of(tenant: Tenant, entry: LogEntry) -> AuditEvent:
    return AuditEvent.objects.for_tenant(tenant).get(
        action=config_changes.CONFIG_CHANGED, target_type="auditlog.logentry",
        target_id=str(entry.pk))


def _verify_command(tenant: Tenant, capsys) -> str:
    with pytest.raises(CommandError):
        call_command("verify_audit_chain", tenant=tenant.slug)
    return capsys.readouterr().out


def _change_purpose_and_settings(tenant: Tenant) -> tuple[Purpose, LogEntry, LogEntry]:
    purpose = Purpose.objects.for_tenant(tenant).get(key="analytics")
    purpose.name = "Usage statistics"
    purpose.save()
    tenant.settings = {"history_cap": 150}
    tenant.save()
    return (purpose, _log_entry(purpose, LogEntry.Action.UPDATE),
            _log_entry(tenant, LogEntry.Action.UPDATE))


def test_each_change_is_anchored_in_its_own_tenants_chain(tenant, other_tenant):
    key, raw_key = make_api_key(tenant, name="web")
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN)
    purpose, purpose_entry, settings_entry = _change_purpose_and_settings(tenant)
    key_entry = _log_entry(key, LogEntry.Action.CREATE)
    member_entry = _log_entry(membership, LogEntry.Action.CREATE)

    anchors = {a.target_id: a for a in _anchors(tenant)}
    assert set(anchors) == {str(e.pk) for e in
                            (key_entry, member_entry, purpose_entry, settings_entry)}
    assert anchors[str(key_entry.pk)].details["model"] == "tenants.apikey"
    assert anchors[str(key_entry.pk)].details["change"] == "create"
    assert anchors[str(settings_entry.pk)].details == {
        "log_entry": settings_entry.pk, "change": "update", "model": "tenants.tenant",
        "object_pk": str(tenant.pk),
        "content_hash": anchors[str(settings_entry.pk)].details["content_hash"]}
    assert anchors[str(purpose_entry.pk)].actor_type == "system"
    assert _anchors(other_tenant) == []
    # Neither the key nor its hash reaches the log or the chain.
    stored = json.dumps([key_entry.changes, [a.details for a in anchors.values()]])
    assert raw_key not in stored
    assert ApiKey.objects.for_tenant(tenant).get(pk=key.pk).key_hash not in stored
    assert "key_hash" not in key_entry.changes
    assert verify_chain(tenant=tenant).intact


def test_a_deletion_and_a_many_to_many_change_are_anchored_too(tenant):
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.VIEWER)
    membership_pk = membership.pk
    membership.delete()  # the row is gone when django-auditlog writes its entry
    deleted = LogEntry.objects.get(
        content_type=ContentType.objects.get_for_model(Membership),
        object_pk=str(membership_pk), action=LogEntry.Action.DELETE)
    assert _anchor_of(tenant, deleted).details["change"] == "delete"

    notice = PrivacyNoticeFactory(tenant=tenant)  # purposes set after the notice is saved
    m2m = LogEntry.objects.get_for_object(notice).filter(changes__has_key="purposes").get()
    assert _anchor_of(tenant, m2m).details["model"] == "consent.privacynotice"
    assert verify_chain(tenant=tenant).intact


def test_a_changed_log_entry_is_named_by_verification(tenant, capsys):
    key, _ = make_api_key(tenant, name="web")
    entry = _log_entry(key, LogEntry.Action.CREATE)
    anchor = _anchor_of(tenant, entry)
    assert export_chain_head(tenant=tenant).written
    # An insider hides that the key could ever manage other keys.
    forged = {**entry.changes, "scopes": ["None", '["events:write"]']}
    _sql(f"UPDATE {LOG_TABLE} SET changes = %s WHERE id = %s", [json.dumps(forged), entry.pk])

    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, anchor.sequence)
    assert f"django-auditlog entry {entry.pk}" in report.problem
    assert "create of tenants.apikey" in report.problem
    assert "altered" in report.problem
    out = _verify_command(tenant, capsys)
    assert f"BROKEN at entry #{anchor.sequence}" in out
    assert f"django-auditlog entry {entry.pk}" in out
    assert not export_chain_head(tenant=tenant).written  # a broken chain is not exported


@pytest.mark.parametrize("column", ["timestamp", "actor_id", "object_repr"])
def test_any_column_of_a_log_entry_is_covered(tenant, column):
    _, _, settings_entry = _change_purpose_and_settings(tenant)
    value = {"timestamp": "2020-01-01 00:00:00", "actor_id": UserFactory().pk,
             "object_repr": "someone else"}[column]
    _sql(f"UPDATE {LOG_TABLE} SET {column} = %s WHERE id = %s", [value, settings_entry.pk])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (
        False, _anchor_of(tenant, settings_entry).sequence)


def test_a_deleted_log_entry_is_named_by_verification(tenant, capsys):
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.OWNER)
    entry = _log_entry(membership, LogEntry.Action.CREATE)
    anchor = _anchor_of(tenant, entry)
    audit.record(tenant, "test.later")  # the anchor is not the newest entry
    _sql(f"DELETE FROM {LOG_TABLE} WHERE id = %s", [entry.pk])

    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, anchor.sequence)
    assert f"django-auditlog entry {entry.pk} (create of tenants.membership " in report.problem
    assert "which was deleted" in report.problem
    assert f"BROKEN at entry #{anchor.sequence}" in _verify_command(tenant, capsys)


def test_removing_a_log_entry_with_its_anchor_is_caught_by_the_exported_head(tenant):
    audit.record(tenant, "test.earlier")
    key, _ = make_api_key(tenant, name="web")
    entry = _log_entry(key, LogEntry.Action.CREATE)
    anchor = _anchor_of(tenant, entry)
    assert export_chain_head(tenant=tenant).head.sequence == anchor.sequence
    # The insider drops the LogEntry and its anchor (the newest entry) and rolls the head back.
    _sql(f"DELETE FROM {LOG_TABLE} WHERE id = %s", [entry.pk])
    _sql(f"DELETE FROM {CHAIN_TABLE} WHERE id = %s", [anchor.pk])
    previous = AuditEvent.objects.for_tenant(tenant).get(sequence=anchor.sequence - 1)
    _sql(f"UPDATE {HEAD_TABLE} SET last_sequence = %s, last_hash = %s WHERE tenant_id = %s",
         [previous.sequence, previous.entry_hash, tenant.pk])
    report = verify_chain(tenant=tenant)
    assert (report.intact, report.first_broken_sequence) == (False, anchor.sequence)
    assert "truncated" in report.problem


def test_the_first_broken_anchor_is_named_across_batches(tenant, monkeypatch):
    monkeypatch.setattr(config_changes.AnchorChecks, "batch_size", 2)
    entries = [_log_entry(make_api_key(tenant, name=f"k{i}")[0], LogEntry.Action.CREATE)
               for i in range(5)]
    assert verify_chain(tenant=tenant).intact
    _sql(f"DELETE FROM {LOG_TABLE} WHERE id IN (%s, %s)", [entries[3].pk, entries[1].pk])
    report = verify_chain(tenant=tenant)
    assert report.first_broken_sequence == _anchor_of(tenant, entries[1]).sequence
    # A broken link later in the chain does not hide an earlier broken anchor.
    _sql(f"UPDATE {CHAIN_TABLE} SET action = %s WHERE tenant_id = %s AND sequence = %s",
         ["test.forged", tenant.pk, _anchor_of(tenant, entries[4]).sequence])
    assert verify_chain(tenant=tenant).first_broken_sequence == _anchor_of(
        tenant, entries[1]).sequence


def test_changes_to_models_without_a_tenant_are_not_anchored(tenant):
    user = UserFactory()
    entry = LogEntry.objects.log_create(user, action=LogEntry.Action.UPDATE,
                                        changes={"email": ["a", "b"]})
    assert entry is not None
    assert not AuditEvent.all_tenants.filter(target_id=str(entry.pk),
                                             target_type="auditlog.logentry").exists()


# --- The admin ---------------------------------------------------------------------------

def _member_client(tenant: Tenant, role: str) -> Client:
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return client


@pytest.fixture
def changes_in_both(tenant, other_tenant) -> dict[str, dict[str, LogEntry]]:
    """A key, a membership, a purpose and the settings changed in each tenant."""
    made = {}
    for t, tag in ((tenant, "ours"), (other_tenant, "theirs")):
        key, _ = make_api_key(t, name=f"{tag}-key")
        member = MembershipFactory(tenant=t, role=Membership.Role.VIEWER,
                                   user=UserFactory(username=f"{tag}-member@example.com"))
        purpose = Purpose.objects.for_tenant(t).get(key="analytics")
        purpose.name = f"{tag} statistics"
        purpose.save()
        t.settings = {"note": f"{tag}-settings"}
        t.save()
        made[tag] = {
            "key": _log_entry(key, LogEntry.Action.CREATE),
            "membership": _log_entry(member, LogEntry.Action.CREATE),
            "purpose": _log_entry(purpose, LogEntry.Action.UPDATE),
            "settings": _log_entry(t, LogEntry.Action.UPDATE),
        }
    return made


def _rows(body: str) -> list[str]:
    return [row for row in body.split("<tr") if "field-anchor" in row]


def test_owners_see_their_tenants_changes_and_none_of_anothers(tenant, other_tenant,
                                                              changes_in_both):
    owner = _member_client(tenant, Membership.Role.OWNER)
    response = owner.get("/admin/auditlog/logentry/")
    assert response.status_code == 200
    body = response.content.decode()
    for text in ("ours-key", "ours-member@example.com", "analytics", tenant.name):
        assert text in body
    for text in ("theirs", other_tenant.name):
        assert text not in body
    mine = changes_in_both["ours"]
    owner_entry = _log_entry(Membership.objects.for_tenant(tenant).get(role="owner"),
                             LogEntry.Action.CREATE)
    assert len(_rows(body)) == len(mine) + 1  # and their own membership
    assert all("verified (entry #" in row for row in _rows(body))
    assert f"verified (entry #{_anchor_of(tenant, owner_entry).sequence})" in body
    # Another tenant's entry looks like a missing one.
    theirs = changes_in_both["theirs"]["settings"]
    foreign = owner.get(f"/admin/auditlog/logentry/{theirs.pk}/change/", follow=True)
    missing = owner.get("/admin/auditlog/logentry/99999999/change/", follow=True)
    assert foreign.status_code == missing.status_code
    assert "theirs-settings" not in foreign.content.decode()
    detail = owner.get(f"/admin/auditlog/logentry/{mine['settings'].pk}/change/")
    assert "ours-settings" in detail.content.decode()
    assert f"verified (entry #{_anchor_of(tenant, mine['settings']).sequence})" in (
        detail.content.decode())
    detail = owner.get(f"/admin/auditlog/logentry/{mine['purpose'].pk}/change/")
    assert "ours statistics" in detail.content.decode()
    # Searching and filtering stay inside the tenant.
    assert _rows(owner.get("/admin/auditlog/logentry/?q=theirs").content.decode()) == []
    filtered = owner.get("/admin/auditlog/logentry/?model=tenants.apikey").content.decode()
    assert len(_rows(filtered)) == 1


def test_the_list_is_read_only_and_for_owners_only(tenant, changes_in_both):
    owner = _member_client(tenant, Membership.Role.OWNER)
    entry = changes_in_both["ours"]["key"]
    assert owner.post(f"/admin/auditlog/logentry/{entry.pk}/delete/",
                      {"post": "yes"}).status_code in {302, 403}
    assert owner.get("/admin/auditlog/logentry/add/").status_code == 403
    assert LogEntry.objects.filter(pk=entry.pk).exists()
    viewer = _member_client(tenant, Membership.Role.VIEWER)
    assert viewer.get("/admin/auditlog/logentry/").status_code == 403
    assert "logentry" not in viewer.get("/admin/").content.decode()


def test_an_altered_entry_is_flagged_in_the_admin(tenant, changes_in_both):
    entry = changes_in_both["ours"]["purpose"]
    _sql(f"UPDATE {LOG_TABLE} SET changes_text = %s WHERE id = %s", ["edited", entry.pk])
    owner = _member_client(tenant, Membership.Role.OWNER)
    detail = owner.get(f"/admin/auditlog/logentry/{entry.pk}/change/").content.decode()
    assert f"ALTERED since anchored by entry #{_anchor_of(tenant, entry).sequence}" in detail
    body = owner.get("/admin/auditlog/logentry/").content.decode()
    assert sum("ALTERED" in row for row in _rows(body)) == 1


def test_a_superuser_sees_every_tenants_changes_and_unanchored_ones(
        tenant, other_tenant, changes_in_both, admin_client):
    stray = LogEntry.objects.log_create(UserFactory(), action=LogEntry.Action.UPDATE,
                                        changes={"email": ["a", "b"]})
    body = admin_client.get("/admin/auditlog/logentry/").content.decode()
    assert tenant.name in body
    assert other_tenant.name in body
    assert "not anchored" in body
    assert stray is not None
