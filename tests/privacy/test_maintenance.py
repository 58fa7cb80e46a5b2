"""Beat work and operator commands: reminders, housekeeping, verify_erasure,
replay_erasures, the signing secret."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.events.models import Event
from apps.privacy.models import ErasureTombstone, PortalSession, PrivacyRequest
from apps.privacy.services import (
    open_portal_session,
    run_housekeeping,
    send_deadline_reminders,
)
from apps.tenants.models import Membership
from tests.factories.events import EventFactory
from tests.factories.privacy import make_request, seed_subject
from tests.factories.tenants import MembershipFactory, UserFactory


def test_reminders_go_to_owners_and_admins_with_counts_not_subjects(tenant, other_tenant,
                                                                   oncommit):
    MembershipFactory(tenant=tenant, user=UserFactory(username="boss@acme.example"))
    MembershipFactory(tenant=tenant, user=UserFactory(username="analyst@acme.example"),
                      role=Membership.Role.ANALYST)
    late = make_request(tenant, "access", "alice@example.com", channel="portal",
                        verified=False, received_at=timezone.now() - timedelta(days=40))
    make_request(tenant, "access", "bob@example.com", channel="portal", verified=False)
    make_request(other_tenant, "access", "carol@example.com", channel="portal",
                 verified=False, received_at=timezone.now() - timedelta(days=40))
    mail.outbox.clear()
    with oncommit():
        sent = send_deadline_reminders()
    assert sent == {"tenants": 2, "requests": 2}
    ours = [m for m in mail.outbox if "boss@acme.example" in m.to]
    assert len(ours) == 1
    assert "analyst@acme.example" not in ours[0].to
    assert "overdue: 1" in ours[0].body
    assert f"/admin/privacy/privacyrequest/{late.pk}/change/" in ours[0].body
    assert "alice" not in ours[0].body
    assert "carol" not in ours[0].body
    with oncommit():
        assert send_deadline_reminders() == {}  # not again within 20 hours


def test_a_ccpa_acknowledgment_about_to_be_late_is_reminded(tenant, oncommit):
    MembershipFactory(tenant=tenant, user=UserFactory(username="boss@acme.example"))
    make_request(tenant, "access", "alice@example.com", channel="mail", email="",
                 verified=False, regime="ccpa", received_at=timezone.now() - timedelta(days=13))
    with oncommit():
        assert send_deadline_reminders()["requests"] == 1
    assert "ack due" in mail.outbox[-1].body


def test_housekeeping_rejects_unverified_portal_requests_after_30_days(tenant, oncommit):
    pr = make_request(tenant, "access", "alice@example.com", channel="portal", verified=False)
    with time_machine.travel(timezone.now() + timedelta(days=31), tick=False), oncommit():
        assert run_housekeeping()["unverified_rejected"] == 1
    pr.refresh_from_db()
    assert pr.status == "rejected"
    assert "could not verify" in pr.rejection_reason


def test_housekeeping_leaves_request_records_to_the_retention_policy(tenant, oncommit):
    seed_subject(tenant)
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    with time_machine.travel(timezone.now() + timedelta(days=2000), tick=False):
        run_housekeeping()
    assert PrivacyRequest.objects.for_tenant(tenant).filter(pk=pr.pk).exists()
    assert ErasureTombstone.objects.for_tenant(tenant).get().privacy_request == pr


def test_housekeeping_prunes_expired_portal_sessions(tenant):
    open_portal_session(tenant=tenant, subject_key="k" * 64, method="signed_link")
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        assert run_housekeeping()["sessions_deleted"] == 1
    assert not PortalSession.all_tenants.exists()


def test_verify_erasure_reports_zero_hits_and_exits_1_on_a_leftover(tenant, oncommit):
    seed_subject(tenant)
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    out = io.StringIO()
    call_command("verify_erasure", str(pr.pk), stdout=out)
    assert "0 hits" in out.getvalue()
    EventFactory(tenant=tenant, subject_key=pr.subject_key)  # e.g. a restored backup
    with pytest.raises(CommandError) as failed:
        call_command("verify_erasure", str(pr.pk), stdout=io.StringIO())
    assert failed.value.returncode == 1
    pr.refresh_from_db()
    assert "table events_event.subject_key" in pr.erasure_check["hits"]


def test_verify_erasure_refuses_other_kinds_and_unknown_ids(tenant):
    access = make_request(tenant, "access", "alice@example.com", verified=False,
                          channel="portal")
    with pytest.raises(CommandError):
        call_command("verify_erasure", str(access.pk))
    with pytest.raises(CommandError):
        call_command("verify_erasure", "999999")


def test_replay_erasures_deletes_what_a_restore_brought_back(tenant, other_tenant, oncommit):
    seed_subject(tenant)
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    restored = EventFactory.create_batch(3, tenant=tenant, subject_key=pr.subject_key)
    survivor = seed_subject(tenant, "bob@example.com", events=2)
    out = io.StringIO()
    call_command("replay_erasures", "--tenant", tenant.slug, stdout=out)
    assert "read the tombstone store" in out.getvalue()
    assert "replayed 1 erased subject(s)" in out.getvalue()
    assert "events.event: 3 row(s) removed" in out.getvalue()
    assert "re-created 0 tombstone row(s)" in out.getvalue()
    assert not Event.all_tenants.filter(pk__in=[e.pk for e in restored]).exists()
    assert Event.objects.for_tenant(tenant).filter(subject_key=survivor).count() == 2
    call_command("replay_erasures", "--since", "2999-01-01", stdout=io.StringIO())


def test_replay_erasures_from_the_database_rows_as_before(tenant, oncommit, settings,
                                                          tmp_path):
    seed_subject(tenant)
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    settings.TOMBSTONE_DIR = tmp_path / "empty"  # e.g. a store not yet written
    EventFactory.create_batch(2, tenant=tenant, subject_key=pr.subject_key)
    out = io.StringIO()
    call_command("replay_erasures", "--from-database", "--verify", stdout=out)
    assert "read the database's tombstone rows" in out.getvalue()
    assert "events.event: 2 row(s) removed" in out.getvalue()
    assert "wrote 1 missing record(s) to the tombstone store" in out.getvalue()
    assert "0 hits" in out.getvalue()
    assert not Event.objects.for_tenant(tenant).filter(subject_key=pr.subject_key).exists()
    out = io.StringIO()
    call_command("replay_erasures", stdout=out)  # the store now has it
    assert "replayed 1 erased subject(s)" in out.getvalue()


def test_the_signing_secret_command_prints_and_rotates(tenant):
    first, second, rotated = io.StringIO(), io.StringIO(), io.StringIO()
    call_command("privacy_signing_secret", tenant.slug, stdout=first, stderr=io.StringIO())
    call_command("privacy_signing_secret", tenant.slug, stdout=second, stderr=io.StringIO())
    call_command("privacy_signing_secret", tenant.slug, "--rotate", stdout=rotated,
                 stderr=io.StringIO())
    assert first.getvalue() == second.getvalue()
    assert rotated.getvalue() != first.getvalue()
    assert len(first.getvalue().strip()) >= 43  # 256 bits, base64url
