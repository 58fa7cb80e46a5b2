"""Team invitations (issue 17, item 5): an owner invites a colleague by email with a role;
the link works once, until it expires; accepting sets a password and creates the
membership; every step shows in the tenant's audit view."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.pii import mask_personal_data
from apps.tenants.models import Invitation, Membership
from tests.factories.tenants import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-passphrase-41"


def _client(tenant, role=Membership.Role.OWNER) -> Client:
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return client


def _invite(client, tenant, capture, email="new.colleague@example.com", role="analyst"):
    with capture(execute=True):
        response = client.post("/admin/tenants/invitation/add/",
                               {"email": email, "role": role}, follow=True)
    assert response.status_code == 200
    link = re.search(r"(http://testserver/invitations/\S+/)", mail.outbox[-1].body).group(1)
    return link.replace("http://testserver", "")


def test_an_owner_invites_and_the_colleague_accepts_once(
        tenant, django_capture_on_commit_callbacks):
    path = _invite(_client(tenant), tenant, django_capture_on_commit_callbacks)
    message = mail.outbox[-1]
    assert message.to == ["new.colleague@example.com"]
    assert tenant.name in message.subject
    invitation = Invitation.objects.for_tenant(tenant).get()
    token = path.rstrip("/").rsplit("/", 1)[1]
    assert token not in invitation.token_hash  # only a hash is stored
    anonymous = Client()
    page = anonymous.get(path)
    assert page.status_code == 200
    assert "no-cache" in page["Cache-Control"] or "max-age=0" in page["Cache-Control"]
    assert 'id="invitation-role"' in page.content.decode()
    mismatch = anonymous.post(path, {"password1": PASSWORD, "password2": PASSWORD + "x"})
    assert "differ" in mismatch.content.decode()
    weak = anonymous.post(path, {"password1": "12345678", "password2": "12345678"})
    assert weak.status_code == 200
    assert not Membership.objects.for_tenant(tenant).filter(
        user__username="new.colleague@example.com").exists()
    response = anonymous.post(path, {"password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    membership = Membership.objects.for_tenant(tenant).get(
        user__username="new.colleague@example.com")
    assert membership.role == Membership.Role.ANALYST
    assert Client().login(username="new.colleague@example.com", password=PASSWORD)
    # Single use.
    assert anonymous.get(path).status_code == 404
    assert anonymous.post(path, {"password1": PASSWORD, "password2": PASSWORD}
                          ).status_code == 404
    invitation.refresh_from_db()
    assert invitation.status == "accepted"
    # The tenant's audit view: the invitation and the membership, anchored in the chain.
    models = set(LogEntry.objects.filter(content_type__app_label="tenants").values_list(
        "content_type__model", flat=True))
    assert {"invitation", "membership"} <= models
    assert AuditEvent.objects.for_tenant(tenant).filter(action="config.changed").count() >= 3
    owner = Membership.objects.for_tenant(tenant).filter(role="owner").first().user
    view = Client()
    view.force_login(owner)
    audit_page = view.get("/admin/auditlog/logentry/").content.decode()
    assert "new.colleague@example.com" in audit_page


def test_an_expired_or_revoked_link_does_not_work(tenant, django_capture_on_commit_callbacks):
    client = _client(tenant)
    path = _invite(client, tenant, django_capture_on_commit_callbacks)
    Invitation.objects.for_tenant(tenant).update(expires_at=timezone.now() - timedelta(1))
    assert Client().get(path).status_code == 404
    second = _invite(client, tenant, django_capture_on_commit_callbacks,
                     email="other@example.com")
    invitation = Invitation.objects.for_tenant(tenant).get(email="other@example.com")
    client.post("/admin/tenants/invitation/", {"action": "revoke_selected",
                                               "_selected_action": [invitation.pk]})
    assert Client().post(second, {"password1": PASSWORD, "password2": PASSWORD}
                         ).status_code == 404
    assert not get_user_model().objects.filter(username="other@example.com").exists()
    assert Client().get("/invitations/not-a-real-token-at-all-0123456789/").status_code == 404


def test_an_existing_account_accepts_with_its_own_password(
        tenant, other_tenant, django_capture_on_commit_callbacks):
    user = UserFactory(username="known@example.com", password="their-own-passphrase-9")
    MembershipFactory(tenant=other_tenant, user=user, role="viewer")
    path = _invite(_client(tenant), tenant, django_capture_on_commit_callbacks,
                   email="known@example.com", role="admin")
    anonymous = Client()
    assert anonymous.post(path, {"password1": "wrong-guess-12345"}).status_code == 200
    assert not Membership.objects.for_tenant(tenant).filter(user=user).exists()
    assert anonymous.post(path, {"password1": "their-own-passphrase-9"}).status_code == 302
    assert Membership.objects.for_tenant(tenant).get(user=user).role == "admin"


def test_only_owners_invite_and_members_see_only_their_tenants_invitations(
        tenant, other_tenant, django_capture_on_commit_callbacks):
    admin_member = _client(tenant, Membership.Role.ADMIN)
    assert admin_member.get("/admin/tenants/invitation/add/").status_code == 403
    assert admin_member.post("/admin/tenants/invitation/add/",
                             {"email": "x@example.com", "role": "owner"}).status_code == 403
    _invite(_client(other_tenant), other_tenant, django_capture_on_commit_callbacks,
            email="their.hire@example.com")
    theirs = Invitation.objects.for_tenant(other_tenant).get()
    mine = _client(tenant)
    assert "their.hire@example.com" not in mine.get(
        "/admin/tenants/invitation/").content.decode()
    foreign = mine.get(f"/admin/tenants/invitation/{theirs.pk}/change/", follow=True)
    missing = mine.get("/admin/tenants/invitation/999999/change/", follow=True)
    assert foreign.status_code == missing.status_code
    assert "their.hire@example.com" not in foreign.content.decode()
    # Revoking through the action with a foreign id does nothing.
    mine.post("/admin/tenants/invitation/", {"action": "revoke_selected",
                                             "_selected_action": [theirs.pk]})
    theirs.refresh_from_db()
    assert theirs.status == "open"


def test_the_invitation_token_is_masked_in_logs():
    line = '"GET /invitations/AbCdEf0123456789AbCdEf0123456789/ HTTP/1.1" 200'
    assert "AbCdEf0123456789" not in mask_personal_data(line)
