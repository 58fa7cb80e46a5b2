"""Webhooks in the admin: a member registers an endpoint of their tenant (the secret shown
once), and the delivery log shows only their tenant's deliveries."""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings

from apps.tenants.models import Membership
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import create_webhook_endpoint, emit_webhook_event
from tests.factories.tenants import MembershipFactory


@pytest.fixture
def owner_client(tenant) -> Client:
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(membership.user)
    return client


def test_a_member_registers_an_endpoint_and_sees_its_secret_once(tenant, owner_client):
    response = owner_client.post("/admin/webhooks/webhookendpoint/add/", {
        "url": "http://127.0.0.1:9/admin-hook", "description": "from the admin",
        "events": ["model.activated", "retention.completed"], "is_active": "on"}, follow=True)
    assert response.status_code == 200
    endpoint = WebhookEndpoint.all_tenants.get(description="from the admin")
    assert endpoint.tenant_id == tenant.pk
    assert endpoint.events == ["model.activated", "retention.completed"]
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", response.content.decode())
    assert secret is not None
    change = owner_client.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/")
    assert change.status_code == 200
    assert secret.group(0) not in change.content.decode()


@override_settings(WEBHOOK_REQUIRE_HTTPS=True, WEBHOOK_ALLOW_LOOPBACK=False)
def test_the_admin_form_refuses_a_private_address(tenant, owner_client):
    response = owner_client.post("/admin/webhooks/webhookendpoint/add/", {
        "url": "https://192.168.1.20/hook", "events": ["model.activated"],
        "is_active": "on"})
    assert response.status_code == 200  # the form again, with the error
    assert "private, loopback or link-local" in response.content.decode()
    assert not WebhookEndpoint.all_tenants.exists()


def test_the_delivery_log_shows_the_members_tenant_only(tenant, other_tenant, owner_client):
    for owner, marker in ((tenant, "mine"), (other_tenant, "theirs")):
        create_webhook_endpoint(tenant=owner, url=f"http://127.0.0.1:9/{marker}-hook",
                                events=["retention.completed"])
        emit_webhook_event(tenant_id=owner.pk, event_type="retention.completed",
                           data={"id": 1})
    body = owner_client.get("/admin/webhooks/webhookdelivery/").content.decode()
    assert "mine-hook" in body
    assert "theirs-hook" not in body
    theirs = WebhookDelivery.objects.for_tenant(other_tenant).get()
    foreign = owner_client.get(f"/admin/webhooks/webhookdelivery/{theirs.pk}/change/",
                               follow=True)
    assert "theirs-hook" not in foreign.content.decode()
    mine = WebhookDelivery.objects.for_tenant(tenant).get()
    detail = owner_client.get(f"/admin/webhooks/webhookdelivery/{mine.pk}/change/")
    assert detail.status_code == 200
    assert "Last response code" in detail.content.decode()
