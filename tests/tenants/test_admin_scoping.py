"""A tenant admin in /admin/ sees and can pick only their own tenant's rows."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit import services as audit
from apps.tenants.models import ApiKey, Membership
from tests.factories.tenants import MembershipFactory, UserFactory, make_api_key


@pytest.fixture
def owner_client(tenant) -> Client:
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(membership.user)
    return client


def test_lists_show_only_the_members_tenant(tenant, other_tenant, owner_client):
    mine, _ = make_api_key(tenant, name="mine-key")
    theirs, _ = make_api_key(other_tenant, name="their-key")
    audit.record(other_tenant, "their.secret.action")
    body = owner_client.get("/admin/tenants/apikey/").content.decode()
    assert mine.prefix in body
    assert theirs.prefix not in body
    assert other_tenant.name not in owner_client.get("/admin/tenants/tenant/").content.decode()
    assert "their.secret.action" not in owner_client.get(
        "/admin/audit/auditevent/").content.decode()


def test_another_tenants_object_looks_like_a_missing_one(tenant, other_tenant, owner_client):
    theirs, _ = make_api_key(other_tenant, name="their-key")
    foreign = owner_client.get(f"/admin/tenants/apikey/{theirs.pk}/change/", follow=True)
    missing = owner_client.get("/admin/tenants/apikey/999999/change/", follow=True)
    assert foreign.status_code == missing.status_code
    assert "their-key" not in foreign.content.decode()
    assert owner_client.post(f"/admin/tenants/apikey/{theirs.pk}/delete/",
                             {"post": "yes"}).status_code in {302, 404}
    assert ApiKey.objects.for_tenant(other_tenant).filter(pk=theirs.pk).exists()


def test_foreign_key_choices_are_only_the_members_tenant(tenant, other_tenant, owner_client):
    stranger = UserFactory(username="stranger@other.example")
    MembershipFactory(tenant=other_tenant, user=stranger)
    form = owner_client.get("/admin/tenants/membership/add/").content.decode()
    assert "stranger@other.example" not in form
    assert other_tenant.name not in form


def test_a_created_key_belongs_to_the_members_tenant_and_is_shown_once(tenant, owner_client):
    response = owner_client.post("/admin/tenants/apikey/add/",
                                 {"name": "from-admin", "scopes": ["events:write"]}, follow=True)
    assert response.status_code == 200
    key = ApiKey.all_tenants.get(name="from-admin")
    assert key.tenant_id == tenant.pk
    assert f"dsk_{key.prefix}_" in response.content.decode()
    assert f"dsk_{key.prefix}_" not in owner_client.get(
        f"/admin/tenants/apikey/{key.pk}/change/").content.decode()


def test_a_member_cannot_save_a_row_into_another_tenant(tenant, other_tenant, owner_client):
    MembershipFactory(tenant=other_tenant, role=Membership.Role.VIEWER,
                      user=Membership.objects.for_tenant(tenant).get().user)
    owner_client.post("/admin/tenants/apikey/add/",
                      {"tenant": other_tenant.pk, "name": "sneaky", "scopes": ["events:write"]})
    assert not ApiKey.objects.for_tenant(other_tenant).filter(name="sneaky").exists()


def test_viewers_may_look_but_not_change(tenant):
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.VIEWER)
    key, _ = make_api_key(tenant, name="viewer-can-see")
    client = Client()
    client.force_login(membership.user)
    assert "viewer-can-see" in client.get("/admin/tenants/apikey/").content.decode()
    assert client.get("/admin/tenants/apikey/add/").status_code == 403


def test_a_superuser_sees_every_tenant(tenant, other_tenant, admin_client):
    make_api_key(tenant, name="key-a")
    make_api_key(other_tenant, name="key-b")
    body = admin_client.get("/admin/tenants/apikey/").content.decode()
    assert "key-a" in body
    assert "key-b" in body


def test_a_duplicate_membership_is_a_form_error_not_a_server_error(tenant, owner_client):
    colleague = UserFactory(username="colleague@example.test")
    MembershipFactory(tenant=tenant, user=colleague, role=Membership.Role.VIEWER)
    response = owner_client.post("/admin/tenants/membership/add/",
                                 {"user": colleague.pk, "role": Membership.Role.ANALYST})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Membership.objects.for_tenant(tenant).filter(user=colleague).count() == 1
