"""Webhooks (README "Webhooks"): endpoints a tenant registers, events the other apps emit,
and their signed delivery as durable jobs.

Apps emit with :func:`emit_webhook_event` inside the transaction that made the change: the
delivery rows are written with it (an outbox), and their tasks are sent after the commit.
Payloads carry ids and statuses only: never a raw identifier nor a subject's pseudonym.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import httpx
import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.core.jobs import DurableJob, claim_job, enqueue_job, fail_job, finish_job
from apps.tenants.crypto import decrypt_secret, encrypt_secret
from apps.tenants.models import Tenant
from apps.webhooks import addresses, signing
from apps.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from apps.webhooks.selectors import list_finished_webhook_deliveries_before

logger = logging.getLogger("webhooks")

__all__ = [
    "EventType",
    "backoff_seconds",
    "create_webhook_endpoint",
    "delete_webhook_endpoint",
    "deliver_webhook",
    "emit_webhook_event",
    "prune_webhook_deliveries_batch",
    "update_webhook_endpoint",
    "validate_endpoint_url",
    "validate_event_types",
]

#: Attempts are also bounded by the retry window (``WEBHOOK_RETRY_WINDOW_SECONDS``).
MAX_ATTEMPTS = 30


def validate_event_types(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(events))
    unknown = [e for e in chosen if e not in EventType.values]
    if unknown or not chosen:
        raise ApplicationError("Subscribe to at least one known event type.",
                               code="invalid_webhook_events",
                               details={"unknown": unknown, "allowed": list(EventType.values)})
    return chosen


def validate_endpoint_url(url: str) -> str:
    """An https URL whose host resolves to public addresses only (400 otherwise)."""
    addresses.check_url(url)
    return url


@transaction.atomic
def create_webhook_endpoint(*, tenant: Tenant, url: str, events: Iterable[str],
                            description: str = "", created_by: Any = None,
                            is_active: bool = True) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (``whsec_…``), which is
    shown this once and kept only encrypted."""
    chosen = validate_event_types(events)
    validate_endpoint_url(url)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(tenant=tenant, url=url, events=chosen, description=description,
                               secret_ciphertext=encrypt_secret(secret.encode()),
                               created_by=created_by, is_active=is_active)
    endpoint.full_clean(exclude=["tenant", "secret_ciphertext", "created_by"])
    endpoint.save()
    logger.info("webhooks.endpoint_created tenant_id=%s id=%s", tenant.pk, endpoint.pk)
    return endpoint, secret


@transaction.atomic
def update_webhook_endpoint(*, endpoint: WebhookEndpoint, url: str | None = None,
                            events: Iterable[str] | None = None,
                            is_active: bool | None = None) -> WebhookEndpoint:
    if url is not None and url != endpoint.url:
        endpoint.url = validate_endpoint_url(url)
    if events is not None:
        endpoint.events = validate_event_types(events)
    if is_active is not None:
        endpoint.is_active = is_active
    endpoint.save()
    return endpoint


@transaction.atomic
def delete_webhook_endpoint(*, endpoint: WebhookEndpoint) -> None:
    """Stop sending to the endpoint; pending deliveries to it fail. Its delivery log stays
    (the row is kept, hidden from the API)."""
    now = timezone.now()
    endpoint.deleted_at = now
    endpoint.is_active = False
    # save(), not update(): django-auditlog records the change.
    endpoint.save(update_fields=["deleted_at", "is_active", "updated_at"])
    WebhookDelivery.objects.for_tenant(endpoint.tenant_id).filter(
        endpoint_id=endpoint.pk, status=DurableJob.Status.PENDING).update(
        status=DurableJob.Status.FAILED, last_error="endpoint deleted", finished_at=now,
        updated_at=now)
    logger.info("webhooks.endpoint_deleted tenant_id=%s id=%s", endpoint.tenant_id, endpoint.pk)


def emit_webhook_event(*, tenant_id: int, event_type: str, data: Mapping[str, Any],
                       dedupe_key: str = "") -> int:
    """Queue ``event_type`` with ``data`` (ids and statuses only) for every active endpoint
    of the tenant subscribed to it; the sends start after the surrounding transaction
    commits. With ``dedupe_key`` the event is queued once per endpoint however often it is
    emitted. Returns the number of deliveries created."""
    if event_type not in EventType.values:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoints = [e for e in WebhookEndpoint.objects.for_tenant(tenant_id).live()
                 .filter(is_active=True).only("pk", "events") if event_type in e.events]
    if not endpoints:
        return 0
    message_id = (signing.message_id_for(tenant_id=tenant_id, dedupe_key=dedupe_key)
                  if dedupe_key else signing.new_message_id())
    payload = {"type": event_type, "timestamp": timezone.now().isoformat(),
               "data": dict(data)}
    created = 0
    with transaction.atomic():
        done = set(WebhookDelivery.objects.for_tenant(tenant_id).filter(
            endpoint__in=endpoints, message_id=message_id).values_list("endpoint_id",
                                                                         flat=True))
        for endpoint in endpoints:
            if endpoint.pk in done:
                continue
            delivery = WebhookDelivery.objects.create(
                tenant_id=tenant_id, endpoint=endpoint, message_id=message_id,
                event_type=event_type, payload=payload, max_attempts=MAX_ATTEMPTS)
            enqueue_job(delivery)
            created += 1
    return created


def backoff_seconds(attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (1, 2, …): ``WEBHOOK_BACKOFF_BASE_SECONDS``
    doubled each time, capped at ``WEBHOOK_BACKOFF_MAX_SECONDS``, with jitter (between
    half and all of it), so endpoints that failed together are not retried together."""
    base = float(settings.WEBHOOK_BACKOFF_BASE_SECONDS)
    delay = min(base * 2 ** max(attempt - 1, 0), float(settings.WEBHOOK_BACKOFF_MAX_SECONDS))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not a secret


def _send(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> int:
    """One signed POST; returns the status code. Connects to the address that was checked
    (the Host header and TLS name stay the URL's host); redirects are not followed and the
    response body is not read."""
    target = addresses.check_url(endpoint.url)
    body = orjson.dumps(delivery.payload)
    secret = decrypt_secret(endpoint.secret_ciphertext).decode()
    headers = signing.signed_headers(secret=secret, message_id=delivery.message_id,
                                     timestamp=int(timezone.now().timestamp()), body=body)
    headers["user-agent"] = "Discreet-Webhooks/1"
    url = httpx.URL(endpoint.url)
    host = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    pinned = url.copy_with(host=host)
    default_port = 443 if target.scheme == "https" else 80
    headers["host"] = target.host if target.port == default_port else (
        f"{target.host}:{target.port}")
    timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client, \
            client.stream("POST", pinned, content=body, headers=headers,
                          extensions={"sni_hostname": target.host}) as response:
        return response.status_code


def deliver_webhook(*, tenant_id: int, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt of a delivery (the task's body). Idempotent: a finished delivery,
    or one whose next attempt is not due yet (an early duplicate message), is left alone.
    A 2xx answer finishes it; anything else schedules the next attempt with backoff, until
    the retry window is spent; a URL now refused (SSRF) or a deleted endpoint fails it."""
    current = WebhookDelivery.objects.for_tenant(tenant_id).filter(pk=delivery_id).first()
    if current is None or current.is_finished:
        return current
    if current.next_attempt_at and current.next_attempt_at > timezone.now():
        return current  # not due: the message that is due is on its way
    delivery = claim_job(WebhookDelivery, tenant_id=tenant_id, job_id=delivery_id)
    if delivery is None:
        return None
    endpoint = WebhookEndpoint.objects.for_tenant(tenant_id).filter(
        pk=delivery.endpoint_id).first()
    if endpoint is None or endpoint.deleted_at is not None or not endpoint.is_active:
        fail_job(delivery, "endpoint deleted or inactive", retryable=False)
        return delivery
    now = timezone.now()
    delivery.last_attempt_at = now
    code: int | None = None
    error = ""
    try:
        code = _send(endpoint, delivery)
    except ApplicationError as exc:
        if exc.code == "webhook_host_unresolvable":  # DNS may come back: retry
            delivery.last_response_code = None
            _schedule_retry(delivery, error=exc.code, now=now)
            return delivery
        delivery.last_response_code = None
        delivery.save(update_fields=["last_attempt_at", "last_response_code", "updated_at"])
        fail_job(delivery, f"{exc.code}: {exc.message}", retryable=False)
        logger.warning("webhooks.refused tenant_id=%s delivery=%s code=%s", tenant_id,
                       delivery.pk, exc.code)
        return delivery
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}"  # the class only: a message may quote the URL
    delivery.last_response_code = code
    if code is not None and 200 <= code < 300:
        delivery.save(update_fields=["last_attempt_at", "last_response_code", "updated_at"])
        finish_job(delivery, response_code=code)
        logger.info("webhooks.delivered tenant_id=%s delivery=%s attempts=%s", tenant_id,
                    delivery.pk, delivery.attempts)
        return delivery
    error = error or f"HTTP {code}"
    _schedule_retry(delivery, error=error, now=now)
    return delivery


def _schedule_retry(delivery: WebhookDelivery, *, error: str, now: Any) -> None:
    delay = backoff_seconds(delivery.attempts)
    due = now + timedelta(seconds=delay)
    window = timedelta(seconds=float(settings.WEBHOOK_RETRY_WINDOW_SECONDS))
    if due > delivery.created_at + window or delivery.attempts >= delivery.max_attempts:
        delivery.save(update_fields=["last_attempt_at", "last_response_code", "updated_at"])
        fail_job(delivery, f"{error}; gave up after {delivery.attempts} attempts",
                 retryable=False)
        logger.warning("webhooks.gave_up delivery=%s attempts=%s", delivery.pk,
                       delivery.attempts)
        return
    delivery.status = DurableJob.Status.PENDING
    delivery.next_attempt_at = due
    delivery.enqueued_at = due  # the sweeper re-sends it only once it is overdue
    delivery.last_error = error[:4000]
    delivery.save(update_fields=["status", "next_attempt_at", "enqueued_at", "last_error",
                                 "last_attempt_at", "last_response_code", "updated_at"])
    logger.info("webhooks.retry_scheduled delivery=%s attempt=%s in=%.1fs", delivery.pk,
                delivery.attempts, delay)
    if delay <= float(settings.WEBHOOK_COUNTDOWN_MAX_SECONDS):
        from celery import current_app

        # Longer waits are left to the job sweeper (a broker countdown longer than the
        # visibility timeout would be redelivered early); it sends the job once it is due.
        args = [delivery.tenant_id, delivery.pk]
        transaction.on_commit(lambda: current_app.send_task(
            WebhookDelivery.job_task, args=args, countdown=delay))


def prune_webhook_deliveries_batch(*, tenant: Tenant, cutoff: Any, batch_size: int) -> int:
    """Retention (category ``webhook_deliveries``): delete at most ``batch_size`` of the
    tenant's finished deliveries created before ``cutoff``, in one statement; returns how
    many went. The log holds ids and statuses only (no subject data)."""
    batch = (list_finished_webhook_deliveries_before(tenant=tenant, cutoff=cutoff)
             .order_by().values("pk")[:batch_size])
    _, per_model = WebhookDelivery.objects.for_tenant(tenant).filter(pk__in=batch).delete()
    return per_model.get(WebhookDelivery._meta.label, 0)
