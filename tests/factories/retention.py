"""Retention test data: a subject's history written *at* a given time (time_machine), through
the real services, so ledger rows, state rows, audit entries and events carry the
timestamps production would give them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import TestCase

from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.consent.models import PrivacyNotice
from apps.consent.services import record_consents
from apps.events.models import Event
from apps.modeling.models import ModelVersion
from apps.privacy.models import DataExport, ErasureTombstone, PrivacyRequest
from apps.privacy.services import reject_privacy_request
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories.consent import PrivacyNoticeFactory
from tests.factories.events import EventFactory, ItemFactory
from tests.factories.privacy import make_request

#: Every decision needs a notice in effect; this one is older than any test's time.
NOTICE_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def at(moment: datetime) -> time_machine.travel:
    """``with at(t): ...``: frozen time (no ticking), so boundaries are exact."""
    return time_machine.travel(moment, tick=False)


def consent_at(tenant: Tenant, subject: str, moment: datetime, *, granted: bool = True,
               level: str | None = "full") -> str:
    """The subject's consent decision captured at ``moment``; returns their subject key."""
    key = pseudonymize(tenant, subject)
    notices = PrivacyNotice.objects.for_tenant(tenant)
    if not notices.exists():
        PrivacyNoticeFactory(tenant=tenant, effective_at=NOTICE_SINCE)
    notices.filter(effective_at__gt=NOTICE_SINCE).update(effective_at=NOTICE_SINCE)
    with at(moment):
        record_consents(tenant=tenant, subject_key=key,
                        decisions={"personalization": granted},
                        level=level if granted else None)
    return key


def events_at(tenant: Tenant, subject_key: str, moment: datetime, n: int = 1) -> list[Event]:
    """``n`` events of the subject that occurred at ``moment``."""
    item = ItemFactory(tenant=tenant)
    return [EventFactory(tenant=tenant, subject_key=subject_key, item=item, occurred_at=moment)
            for _ in range(n)]


def audit_entry_at(tenant: Tenant, moment: datetime, action: str = "test.entry") -> AuditEvent:
    with at(moment):
        return record(tenant, action, None, None, {"note": "retention test"})


def closed_request_at(tenant: Tenant, subject: str, moment: datetime) -> PrivacyRequest:
    """A request made and closed (rejected, the shortest way to close one) at ``moment``."""
    with at(moment):
        pr = make_request(tenant, "erasure", subject)
        return reject_privacy_request(privacy_request=pr, reason="Retention test.")


def export_at(tenant: Tenant, subject: str, moment: datetime) -> DataExport:
    """An access request fulfilled at ``moment``: its zip is on disk, expiring 7 days later.
    (Run through the real fulfilment: tasks are eager and sent on commit.)"""
    key = consent_at(tenant, subject, moment)
    events_at(tenant, key, moment)
    with at(moment), TestCase.captureOnCommitCallbacks(execute=True):
        pr = make_request(tenant, "access", subject)
    return DataExport.objects.for_tenant(tenant).get(privacy_request=pr)


def tombstone_at(tenant: Tenant, subject_key: str, moment: datetime) -> ErasureTombstone:
    # Written by erasure fulfilment in production; only its time matters here.
    return ErasureTombstone.objects.create(tenant=tenant, subject_key=subject_key,
                                           erased_at=moment)


def model_version(tenant: Tenant, number: int, *, status: str = ModelVersion.Status.RETIRED,
                  retention_since: datetime | None = None) -> ModelVersion:
    """A registered version with a (fake) artifact file on storage. Real versions come from
    training; retention only looks at numbers, status, the file and the training window."""
    path = default_storage.save(f"retention-test/{tenant.pk}/v{number}.npz",
                                ContentFile(b"not a real model"))
    stats = {"retention_since": retention_since.isoformat()} if retention_since else {}
    return ModelVersion.objects.create(
        tenant=tenant, number=number, algorithm="als", status=status, data_stats=stats,
        consent_snapshot_at=retention_since or datetime(2031, 1, 1, tzinfo=UTC),
        artifact_path=path, artifact_sha256="0" * 64, artifact_bytes=16)


def webhook_delivery_at(tenant: Tenant, moment: datetime,
                        status: str = "succeeded") -> WebhookDelivery:
    """A delivery of an event created at ``moment`` to the tenant's test endpoint (written
    directly: nothing is sent), finished with ``status``."""
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).first()
    if endpoint is None:
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, url="https://hooks.example.com/x", events=["model.activated"],
            secret_ciphertext=b"test")
    with at(moment):
        delivery = WebhookDelivery.objects.create(
            tenant=tenant, endpoint=endpoint, event_type="model.activated",
            message_id=f"msg_{uuid.uuid4().hex}",
            payload={"id": 1})
    WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery.pk).update(status=status)
    delivery.refresh_from_db()
    return delivery
