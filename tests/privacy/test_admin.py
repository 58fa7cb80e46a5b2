"""The admin workflow: list and filters, logging a mail/phone request, the actions, who sees
identities, the audited subject-data view, and tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.privacy.models import PrivacyRequest
from apps.privacy.services.deadlines import add_months
from apps.tenants.models import Membership
from apps.tenants.services import pseudonymize
from tests.factories.privacy import make_request, seed_subject
from tests.factories.tenants import MembershipFactory

LIST = "/admin/privacy/privacyrequest/"


def member(tenant, role=Membership.Role.OWNER) -> Client:
    membership = MembershipFactory(tenant=tenant, role=role)
    client = Client()
    client.force_login(membership.user)
    return client


@pytest.fixture
def owner(tenant) -> Client:
    return member(tenant)


def _portal_request(tenant, kind="access", subject="alice@example.com", **kwargs):
    return make_request(tenant, kind, subject, channel="portal", verified=False, **kwargs)


def test_the_list_shows_due_dates_counts_and_filters(tenant, owner):
    late = _portal_request(tenant, received_at=timezone.now() - timedelta(days=40))
    fresh = _portal_request(tenant, kind="erasure")
    page = owner.get(LIST)
    body = page.content.decode()
    assert page.status_code == 200
    assert late.reference[:8] in body
    assert "overdue: <strong>1</strong>" in body
    overdue = owner.get(LIST, {"due": "overdue"}).content.decode()
    assert late.reference[:8] in overdue
    assert fresh.reference[:8] not in overdue
    by_kind = owner.get(LIST, {"kind__exact": "erasure"}).content.decode()
    assert fresh.reference[:8] in by_kind
    assert late.reference[:8] not in by_kind
    assert "alice@example.com" not in body


def test_staff_log_a_mail_request_with_its_own_receipt_date(tenant, owner, oncommit):
    received = timezone.now() - timedelta(days=3)
    with oncommit():
        response = owner.post(f"{LIST}add/", {
            "tenant": tenant.pk, "kind": "access", "regime": "gdpr", "channel": "mail",
            "identifier": "customer-77", "contact_email": "c77@example.com",
            "received_at": received.strftime("%Y-%m-%d %H:%M:%S")})
    assert response.status_code == 302
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert pr.channel == "mail"
    assert pr.status == "received"
    assert pr.subject_key == pseudonymize(tenant, "customer-77")
    assert pr.received_at == received.replace(microsecond=0)
    assert pr.due_at == add_months(pr.received_at, 1)
    assert pr.logged_by is not None
    assert mail.outbox[0].to == ["c77@example.com"]  # the acknowledgment
    assert pr.acknowledged_at is not None


def test_a_logged_and_verified_request_is_fulfilled(tenant, owner, oncommit):
    seed_subject(tenant, "customer-77")
    with oncommit():
        owner.post(f"{LIST}add/", {
            "tenant": tenant.pk, "kind": "erasure", "regime": "ccpa", "channel": "phone",
            "identifier": "customer-77", "identity_verified": "on",
            "received_at": timezone.now().strftime("%Y-%m-%d 00:00:00")})
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert pr.status == "completed"
    assert pr.verification_method == "staff"


def _act(client, pr, action, oncommit, **data):
    with oncommit():
        return client.post(f"{LIST}{pr.pk}/act/{action}/", data)


def test_verify_manually_then_fulfil(tenant, owner, oncommit):
    seed_subject(tenant)
    pr = _portal_request(tenant)
    assert _act(owner, pr, "verify", oncommit).status_code == 302
    pr.refresh_from_db()
    assert pr.status == "completed"
    assert pr.verification_method == "staff"


def test_extend_and_reject_tell_the_subject_why(tenant, owner, oncommit):
    pr = _portal_request(tenant)
    _act(owner, pr, "extend", oncommit, reason="We received many requests.")
    pr.refresh_from_db()
    assert pr.is_extended
    assert "We received many requests." in mail.outbox[-1].body
    _act(owner, pr, "reject", oncommit, reason="We hold no account for this address.")
    pr.refresh_from_db()
    assert pr.status == "rejected"
    assert "supervisory authority" in mail.outbox[-1].body  # the right to complain
    assert "We hold no account for this address." in mail.outbox[-1].body
    assert not bytes(pr.contact_ciphertext or b"")  # closed: contact wiped


def test_an_action_without_a_reason_changes_nothing(tenant, owner, oncommit):
    pr = _portal_request(tenant)
    response = _act(owner, pr, "reject", oncommit, reason="")
    assert response.status_code == 302
    pr.refresh_from_db()
    assert pr.status == "received"


def test_resend_sends_a_fresh_verification_link(tenant, owner, oncommit):
    pr = _portal_request(tenant)
    _act(owner, pr, "resend", oncommit)
    pr.refresh_from_db()
    assert pr.status == "verifying"
    assert "/verify?r=" in mail.outbox[-1].body


def test_fulfil_now_refuses_an_unverified_request(tenant, owner, oncommit):
    pr = _portal_request(tenant)
    response = _act(owner, pr, "fulfil", oncommit)
    assert response.status_code == 302
    pr.refresh_from_db()
    assert pr.status == "received"


def test_the_detail_page_has_a_timeline_and_no_identity(tenant, owner, oncommit):
    seed_subject(tenant)
    with oncommit():
        pr = _portal_request(tenant, verification="staff")
    page = owner.get(f"{LIST}{pr.pk}/change/").content.decode()
    assert "privacy.request_received" in page
    assert "privacy.request_completed" in page
    assert "Fulfil now" not in page  # completed: nothing to fulfil
    assert "alice@example.com" not in page
    assert pr.subject_key not in page


def test_opening_subject_data_is_audited(tenant, owner):
    pr = _portal_request(tenant)
    page = owner.get(f"{LIST}{pr.pk}/subject-data/")
    assert page.status_code == 200
    assert "alice@example.com" in page.content.decode()
    entry = AuditEvent.objects.for_tenant(tenant).get(action="privacy.subject_data_viewed")
    assert entry.target_id == str(pr.pk)
    assert entry.subject_token == ""
    assert "alice" not in str(entry.details)


@pytest.mark.parametrize("role", [Membership.Role.ANALYST, Membership.Role.VIEWER])
def test_analysts_see_counts_not_identities_and_cannot_act(tenant, role, oncommit):
    client = member(tenant, role)
    pr = _portal_request(tenant)
    listing = client.get(LIST).content.decode()
    assert "Total: 1" in listing
    detail = client.get(f"{LIST}{pr.pk}/change/").content.decode()
    assert "Open subject data" not in detail
    assert client.get(f"{LIST}{pr.pk}/subject-data/").status_code == 403
    assert _act(client, pr, "reject", oncommit, reason="no").status_code == 403
    pr.refresh_from_db()
    assert pr.status == "received"


def test_another_tenants_requests_are_invisible_and_untouchable(tenant, other_tenant, owner,
                                                                oncommit):
    theirs = _portal_request(other_tenant, subject="bob@example.com")
    assert theirs.reference[:8] not in owner.get(LIST).content.decode()
    foreign = owner.get(f"{LIST}{theirs.pk}/change/", follow=True)
    missing = owner.get(f"{LIST}999999/change/", follow=True)
    assert foreign.status_code == missing.status_code
    assert theirs.reference[:8] not in foreign.content.decode()
    assert owner.get(f"{LIST}{theirs.pk}/subject-data/").status_code == 404
    for action in ("verify", "reject", "extend", "fulfil", "resend"):
        assert _act(owner, theirs, action, oncommit, reason="x").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "received"
    assert not theirs.is_extended
    assert not mail.outbox


def test_logging_a_request_for_another_tenant_is_refused(tenant, other_tenant, owner):
    response = owner.post(f"{LIST}add/", {
        "tenant": other_tenant.pk, "kind": "access", "regime": "gdpr", "channel": "mail",
        "identifier": "x", "received_at": "2025-01-01 00:00:00"})
    assert response.status_code == 200  # the form, with the choice refused
    assert not PrivacyRequest.all_tenants.exists()


def test_requests_cannot_be_deleted_in_the_admin(tenant, owner):
    pr = _portal_request(tenant)
    owner.post(f"{LIST}{pr.pk}/delete/", {"post": "yes"})
    assert PrivacyRequest.objects.for_tenant(tenant).filter(pk=pr.pk).exists()


def test_a_superuser_sees_every_tenants_requests(tenant, other_tenant, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root@example.com",
                                                            "root@example.com", "pw")
    client = Client()
    client.force_login(admin_user)
    mine = _portal_request(tenant)
    theirs = _portal_request(other_tenant, subject="bob@example.com")
    body = client.get(LIST).content.decode()
    assert mine.reference[:8] in body
    assert theirs.reference[:8] in body
    assert client.get(f"{LIST}{theirs.pk}/change/").status_code == 200
    assert client.get(f"{LIST}add/").status_code == 200
