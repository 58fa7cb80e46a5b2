"""Webhooks against PostgreSQL, Redis and a real worker (issue 20 acceptance): a receiver on
loopback gets ``privacy_request.completed`` for an erasure and verifies it with the
client's helper; a receiver that answers 500 twice gets the third attempt; a private
address is refused under the production settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from apps.webhooks.models import EventType, WebhookDelivery
from apps.webhooks.services import create_webhook_endpoint, emit_webhook_event
from discreet_client.webhooks import verify_signature
from tests.factories.privacy import make_request, seed_subject
from tests.integration_support import ROOT, wait_for
from tests.webhooks.receiver import webhook_receiver

pytestmark = pytest.mark.integration


def _delivery(tenant, event_type: str) -> WebhookDelivery | None:
    return WebhookDelivery.objects.for_tenant(tenant).filter(event_type=event_type).first()


def test_an_erasure_reaches_a_loopback_receiver_signed(live_worker, tenant):
    with webhook_receiver() as receiver:
        _, secret = create_webhook_endpoint(
            tenant=tenant, url=receiver.url, events=[EventType.PRIVACY_REQUEST_COMPLETED])
        seed_subject(tenant, "alice@example.com", events=5)
        pr = make_request(tenant, "erasure", "alice@example.com")  # commits: the worker runs it
        received = wait_for(lambda: receiver.of_type("privacy_request.completed"), timeout=90)
        delivery = wait_for(lambda: (d := _delivery(tenant, "privacy_request.completed"))
                            and d.status == "succeeded" and d, timeout=30)
    payload = verify_signature(secret, received[0].headers, received[0].body)
    assert payload["type"] == "privacy_request.completed"
    assert payload["data"]["id"] == pr.pk
    assert payload["data"]["status"] == "completed"
    assert b"alice" not in received[0].body
    assert pr.subject_key.encode() not in received[0].body
    assert (delivery.attempts, delivery.last_response_code) == (1, 200)


def test_a_receiver_that_fails_twice_gets_the_third_attempt(live_worker, tenant):
    with webhook_receiver(answers=[500, 500]) as receiver:
        _, secret = create_webhook_endpoint(tenant=tenant, url=receiver.url,
                                            events=[EventType.MODEL_ACTIVATED])
        from django.db import transaction

        with transaction.atomic():
            emit_webhook_event(tenant_id=tenant.pk, event_type=EventType.MODEL_ACTIVATED,
                               data={"id": 1, "status": "active"})
        delivery = wait_for(lambda: (d := _delivery(tenant, "model.activated"))
                            and d.status == "succeeded" and d, timeout=60)
        assert len(receiver.received) == 3
    assert (delivery.attempts, delivery.last_response_code) == (3, 200)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    for attempt in receiver.received:  # each attempt is signed afresh
        verify_signature(secret, attempt.headers, attempt.body)


PROBE = """
import django
django.setup()
from django.conf import settings
from apps.core.exceptions import ApplicationError
from apps.webhooks.addresses import check_url
assert settings.WEBHOOK_REQUIRE_HTTPS and not settings.WEBHOOK_ALLOW_LOOPBACK
for url in ("https://10.0.0.7/hook", "https://127.0.0.1/hook", "https://169.254.169.254/x",
            "http://8.8.8.8/hook"):
    try:
        check_url(url)
    except ApplicationError as exc:
        print(url, exc.code)
    else:
        print(url, "accepted")
"""


def test_private_and_plain_http_endpoints_are_refused_under_the_production_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "DJANGO_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "platform_site.settings.production",
                "EMAIL_URL": "discard://", "SECRET_KEY": "x" * 50,
                "DISCREET_MASTER_KEY": "y" * 40})
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout.split("\n")
    assert out[:4] == ["https://10.0.0.7/hook webhook_address_refused",
                       "https://127.0.0.1/hook webhook_address_refused",
                       "https://169.254.169.254/x webhook_address_refused",
                       "http://8.8.8.8/hook invalid_webhook_url"]
