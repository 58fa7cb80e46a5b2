from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import factory
from django.utils import timezone

from apps.events.models import Event, EventProperty, EventType, Item
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize
from tests.factories.tenants import TenantFactory


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"item-{n}")
    title = factory.LazyAttribute(lambda o: f"Title of {o.external_id}")


class EventTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventType

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"type_{n}")
    weight = 1.0


class EventPropertyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventProperty

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"prop_{n}")


class EventFactory(factory.django.DjangoModelFactory):
    """A stored event; its item belongs to the same tenant."""

    class Meta:
        model = Event

    tenant = factory.SubFactory(TenantFactory)
    event_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    subject_key = factory.LazyAttribute(lambda o: pseudonymize(o.tenant, "factory-subject"))
    item = factory.SubFactory(ItemFactory, tenant=factory.SelfAttribute("..tenant"))
    type = "view"
    occurred_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))


def grant_consent(tenant: Tenant, subject: str, *, level: str = "full") -> str:
    """Consent to personalization for the raw ``subject``; returns their subject key."""
    from apps.consent.services import record_consents

    key = pseudonymize(tenant, subject)
    record_consents(tenant=tenant, subject_key=key, decisions={"personalization": True},
                    level=level)
    return key


def withdraw_consent(tenant: Tenant, subject: str) -> str:
    from apps.consent.services import record_consents

    key = pseudonymize(tenant, subject)
    record_consents(tenant=tenant, subject_key=key, decisions={"personalization": False})
    return key


def event_payload(subject: str = "user-1", **overrides: Any) -> dict[str, Any]:
    """One event as a client sends it."""
    occurred_at = overrides.pop("occurred_at", timezone.now() - timedelta(minutes=1))
    body: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "subject": subject,
        "item": "book-1",
        "type": "view",
        "occurred_at": occurred_at.isoformat() if isinstance(occurred_at, datetime)
        else occurred_at,
    }
    body.update(overrides)
    return body
