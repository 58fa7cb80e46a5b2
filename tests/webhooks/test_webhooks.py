"""Webhooks on the embedded default (tasks run eagerly after commit): registration and its
SSRF checks, signing, emission from privacy requests, delivery and retries, the API."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.tenants.models import Scope
from apps.tenants.services import pseudonymize
from apps.webhooks import addresses, signing
from apps.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import (
    backoff_seconds,
    create_webhook_endpoint,
    deliver_webhook,
    emit_webhook_event,
)
from discreet_client.webhooks import WebhookVerificationError, verify_signature
from tests.factories.privacy import make_request
from tests.webhooks.receiver import webhook_receiver

PRODUCTION = {"WEBHOOK_REQUIRE_HTTPS": True, "WEBHOOK_ALLOW_LOOPBACK": False}


@pytest.fixture
def oncommit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


# --- Signatures ----------------------------------------------------------------------------


def test_a_signature_made_here_verifies_with_the_client_helper_and_nothing_else_does():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    body = b'{"type":"model.activated","data":{"id":1}}'
    now = int(time.time())
    headers = signing.signed_headers(secret=secret, message_id="msg_1", timestamp=now,
                                     body=body)
    assert headers["webhook-signature"].startswith("v1,")
    assert verify_signature(secret, headers, body)["data"] == {"id": 1}
    with pytest.raises(WebhookVerificationError):
        verify_signature(secret, headers, body.replace(b"1}", b"2}"))  # tampered body
    with pytest.raises(WebhookVerificationError):
        verify_signature(signing.new_secret(), headers, body)  # another endpoint's secret
    with pytest.raises(WebhookVerificationError):
        verify_signature(secret, {**headers, "webhook-id": "msg_2"}, body)  # another message
    with pytest.raises(WebhookVerificationError):  # a replay, ten minutes later
        verify_signature(secret, headers, body, now=now + 600)
    rotated = {**headers, "webhook-signature": f"v1,AAAA {headers['webhook-signature']}"}
    assert verify_signature(secret, rotated, body)["type"] == "model.activated"


def test_the_signature_follows_the_standard_webhooks_test_vector():
    # The example of the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    signature = signing.sign(secret=secret, message_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
                             timestamp=1614265330, body=body.encode())
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# --- Registration and SSRF -----------------------------------------------------------------


@override_settings(**PRODUCTION)
@pytest.mark.parametrize("url", [
    "https://10.1.2.3/hook", "https://192.168.0.10/hook", "https://172.16.5.4/hook",
    "https://127.0.0.1/hook", "https://localhost/hook", "https://169.254.169.254/latest",
    "https://[::1]/hook", "https://[fe80::1]/hook", "https://[::ffff:10.0.0.1]/hook",
    "https://0.0.0.0/hook", "https://100.64.0.1/hook",
])
def test_private_loopback_and_link_local_endpoints_are_refused_in_production(tenant, url):
    with pytest.raises(ApplicationError) as refused:
        create_webhook_endpoint(tenant=tenant, url=url, events=["model.activated"])
    assert refused.value.code == "webhook_address_refused"
    assert not WebhookEndpoint.objects.for_tenant(tenant).exists()


@override_settings(**PRODUCTION)
@pytest.mark.parametrize("url", ["http://8.8.8.8/hook", "ftp://8.8.8.8/x",
                                 "https://user:pw@8.8.8.8/x", "https:///nohost"])
def test_only_plain_https_urls_are_accepted_in_production(tenant, url):
    with pytest.raises(ApplicationError) as refused:
        create_webhook_endpoint(tenant=tenant, url=url, events=["model.activated"])
    assert refused.value.code == "invalid_webhook_url"


@override_settings(**PRODUCTION)
def test_a_public_https_endpoint_is_accepted_and_its_secret_is_stored_encrypted(tenant):
    endpoint, secret = create_webhook_endpoint(
        tenant=tenant, url="https://8.8.8.8/hook", events=["model.activated"] * 2)
    assert endpoint.events == ["model.activated"]
    assert secret.encode() not in bytes(endpoint.secret_ciphertext)


def test_loopback_is_allowed_only_where_the_setting_allows_it(settings):
    loopback = addresses.resolve("127.0.0.1", 80)[0]
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    assert addresses.is_allowed_address(loopback)
    assert not addresses.is_allowed_address(addresses.resolve("10.0.0.1", 80)[0])
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    assert not addresses.is_allowed_address(loopback)


def test_unknown_event_types_are_refused(tenant):
    with pytest.raises(ApplicationError) as refused:
        create_webhook_endpoint(tenant=tenant, url="http://127.0.0.1/x", events=["nope"])
    assert refused.value.code == "invalid_webhook_events"


# --- Emission and delivery -----------------------------------------------------------------


def test_an_erasure_sends_signed_status_webhooks_without_the_subject(tenant, oncommit):
    with webhook_receiver() as receiver:
        endpoint, secret = create_webhook_endpoint(
            tenant=tenant, url=receiver.url,
            events=[EventType.PRIVACY_REQUEST_RECEIVED, EventType.PRIVACY_REQUEST_COMPLETED])
        with oncommit():
            pr = make_request(tenant, "erasure", "alice@example.com")
        pr.refresh_from_db()
        assert pr.status == "completed"
        types = [json.loads(r.body)["type"] for r in receiver.received]
    assert types == ["privacy_request.received", "privacy_request.completed"]
    completed = receiver.of_type("privacy_request.completed")[0]
    payload = verify_signature(secret, completed.headers, completed.body)
    assert payload["data"]["id"] == pr.pk
    assert payload["data"]["status"] == "completed"
    text = b"".join(r.body for r in receiver.received).decode()
    assert "alice" not in text
    assert pseudonymize(tenant, "alice@example.com") not in text
    delivery = WebhookDelivery.objects.for_tenant(tenant).get(
        event_type="privacy_request.completed")
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
        "succeeded", 1, 200)
    assert completed.headers["webhook-id"] == delivery.message_id


def test_only_subscribed_events_of_the_tenant_are_queued_and_once_per_dedupe_key(
        tenant, other_tenant):
    mine, _ = create_webhook_endpoint(tenant=tenant, url="http://127.0.0.1:9/x",
                                      events=["retention.completed"])
    create_webhook_endpoint(tenant=other_tenant, url="http://127.0.0.1:9/x",
                            events=["retention.completed"])
    assert emit_webhook_event(tenant_id=tenant.pk, event_type="model.activated",
                              data={"id": 1}) == 0
    for _ in range(2):
        emit_webhook_event(tenant_id=tenant.pk, event_type="retention.completed",
                           data={"id": 7}, dedupe_key="retention.completed:7")
    assert WebhookDelivery.objects.for_tenant(tenant).count() == 1
    assert WebhookDelivery.objects.for_tenant(other_tenant).count() == 0
    assert WebhookDelivery.objects.for_tenant(tenant).get().endpoint_id == mine.pk


def test_a_failing_endpoint_is_retried_with_backoff_and_then_succeeds(tenant, settings):
    settings.WEBHOOK_BACKOFF_BASE_SECONDS = 3600  # the next attempt is surely not due yet
    with webhook_receiver(answers=[500, 503]) as receiver:
        create_webhook_endpoint(tenant=tenant, url=receiver.url, events=["model.activated"])
        emit_webhook_event(tenant_id=tenant.pk, event_type="model.activated", data={"id": 3})
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()
        deliver_webhook(tenant_id=tenant.pk, delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
            "pending", 1, 500)
        assert delivery.next_attempt_at > delivery.last_attempt_at
        assert delivery.enqueued_at == delivery.next_attempt_at  # the sweeper waits for it
        # Not due yet: a duplicate message is a no-op.
        deliver_webhook(tenant_id=tenant.pk, delivery_id=delivery.pk)
        assert len(receiver.received) == 1
        for _ in range(2):
            WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery.pk).update(
                next_attempt_at=timezone.now())
            deliver_webhook(tenant_id=tenant.pk, delivery_id=delivery.pk)
        delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
        "succeeded", 3, 200)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_retries_stop_when_the_window_is_spent(tenant, settings):
    settings.WEBHOOK_RETRY_WINDOW_SECONDS = 60
    settings.WEBHOOK_BACKOFF_BASE_SECONDS = 3600
    with webhook_receiver(answers=[500]) as receiver:
        create_webhook_endpoint(tenant=tenant, url=receiver.url, events=["model.activated"])
        emit_webhook_event(tenant_id=tenant.pk, event_type="model.activated", data={"id": 3})
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()
        deliver_webhook(tenant_id=tenant.pk, delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "gave up" in delivery.last_error


def test_backoff_doubles_with_jitter_up_to_the_cap(settings):
    settings.WEBHOOK_BACKOFF_BASE_SECONDS = 10
    settings.WEBHOOK_BACKOFF_MAX_SECONDS = 100
    for attempt, full in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        waits = {backoff_seconds(attempt) for _ in range(20)}
        assert all(full / 2 <= w <= full for w in waits)
        assert len(waits) > 1  # jittered


def test_a_delivery_to_an_address_refused_at_send_time_fails_without_a_request(tenant,
                                                                               settings):
    with webhook_receiver() as receiver:
        create_webhook_endpoint(tenant=tenant, url=receiver.url, events=["model.activated"])
        emit_webhook_event(tenant_id=tenant.pk, event_type="model.activated", data={"id": 3})
        settings.WEBHOOK_ALLOW_LOOPBACK = False  # e.g. DNS now points at loopback
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()
        deliver_webhook(tenant_id=tenant.pk, delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "webhook_address_refused" in delivery.last_error
    assert receiver.received == []


def test_overdue_requests_are_announced_once(tenant):
    from apps.privacy.services import run_housekeeping

    create_webhook_endpoint(tenant=tenant, url="http://127.0.0.1:9/x",
                            events=["privacy_request.overdue"])
    pr = make_request(tenant, "access", "bob@example.com", verified=False)
    later = pr.due_at + timedelta(hours=1)
    run_housekeeping(now=later)
    run_housekeeping(now=later + timedelta(hours=1))
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.payload["data"] == {"id": pr.pk, "kind": "access", "regime": pr.regime,
                                        "status": pr.status, "due_at": pr.due_at.isoformat()}


def test_every_privacy_status_with_a_webhook_event_maps_to_it():
    from apps.privacy.models import PrivacyRequest
    from apps.privacy.services.lifecycle import webhook_event_for

    mapped = {s: webhook_event_for(s) for s in PrivacyRequest.Status.values}
    assert mapped["received"] == "privacy_request.received"
    assert mapped["completed"] == "privacy_request.completed"
    assert mapped["in_progress"] is None
    status_events = {e for e in EventType.values if e.startswith("privacy_request.")} - {
        "privacy_request.overdue"}
    # Each status event fires for its status once the status exists (awaiting_approval).
    assert {e for e in mapped.values() if e} == status_events & {
        f"privacy_request.{s}" for s in PrivacyRequest.Status.values}


# --- API -----------------------------------------------------------------------------------


def test_the_api_registers_lists_shows_and_deletes_endpoints(tenant, make_client):
    api = make_client(tenant, [Scope.SETTINGS_MANAGE])
    created = api.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/in",
                                            "events": ["model.activated"]}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_")
    listed = api.get("/api/v1/webhooks").json()["results"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]
    shown = api.get(f"/api/v1/webhooks/{body['id']}").json()
    assert "secret" not in shown
    assert shown["events"] == ["model.activated"]
    assert api.delete(f"/api/v1/webhooks/{body['id']}").status_code == 204
    assert api.get(f"/api/v1/webhooks/{body['id']}").status_code == 404
    assert api.get("/api/v1/webhooks").json()["results"] == []


@override_settings(**PRODUCTION)
def test_the_api_refuses_a_private_endpoint_in_the_error_shape(tenant, make_client):
    api = make_client(tenant, [Scope.SETTINGS_MANAGE])
    response = api.post("/api/v1/webhooks", {"url": "https://10.0.0.5/in",
                                             "events": ["model.activated"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_address_refused"


def test_the_api_needs_the_settings_scope(tenant, make_client):
    api = make_client(tenant, [Scope.KEYS_MANAGE])
    assert api.get("/api/v1/webhooks").status_code == 403
