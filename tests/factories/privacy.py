"""Privacy factories. Requests are made through the service, like production, so the clock,
the audit trail and the status machine are always those of a real request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.events.models import Event
from apps.privacy.models import PrivacyRequest
from apps.privacy.services import Contact, create_privacy_request
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize
from tests.factories.events import EventFactory, ItemFactory, grant_consent


def make_request(tenant: Tenant, kind: str = "erasure", subject: str = "alice@example.com",
                 *, channel: str = PrivacyRequest.Channel.API, verified: bool = True,
                 regime: str | None = None, email: str | None = None,
                 **kwargs: Any) -> PrivacyRequest:
    """A request for ``subject`` (raw id). API requests are verified by the tenant unless
    ``verified=False``; other channels keep the contact (encrypted) like the portal does."""
    verification = kwargs.pop("verification", None)
    if verification is None and verified:
        verification = (PrivacyRequest.Verification.TENANT_ATTESTED
                        if channel == PrivacyRequest.Channel.API
                        else PrivacyRequest.Verification.STAFF)
    contact = None
    if channel != PrivacyRequest.Channel.API:
        contact = Contact(identifier=subject, email=subject if email is None else email)
    return create_privacy_request(
        tenant=tenant, kind=kind, regime=regime, channel=channel,
        subject_key=pseudonymize(tenant, subject), contact=contact,
        verification=verification, origin=kwargs.pop("origin", "http://testserver"),
        **kwargs)


def seed_subject(tenant: Tenant, subject: str = "alice@example.com", *, events: int = 3
                 ) -> str:
    """A subject with consent, a level and ``events`` interactions; returns their key."""
    key = grant_consent(tenant, subject)
    item = ItemFactory(tenant=tenant)
    now = timezone.now()
    Event.objects.bulk_create([
        EventFactory.build(tenant=tenant, subject_key=key, item=item,
                           occurred_at=now - timedelta(minutes=i + 1))
        for i in range(events)
    ])
    return key
