"""Consent factories. Purposes and notices are built in their tenant; ledger rows are only
ever made through the service (``record_for``), like production, so state and ledger agree."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.utils import timezone

from apps.consent.models import ConsentRecord, PrivacyNotice, Purpose
from apps.consent.services import record_consents
from apps.tenants.models import Tenant
from tests.factories.tenants import TenantFactory


class PurposeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purpose

    tenant = factory.SubFactory(TenantFactory)
    key = factory.Sequence(lambda n: f"purpose_{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("_", " ").title())
    description = "A purpose made by a test."
    legal_basis = Purpose.LegalBasis.CONSENT


class PrivacyNoticeFactory(factory.django.DjangoModelFactory):
    """A notice in effect since yesterday covering every purpose of its tenant (or the
    ``purposes`` passed)."""

    class Meta:
        model = PrivacyNotice
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    version = factory.Sequence(lambda n: f"notice-{n}")
    text = "What we do with your data."
    effective_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))

    @factory.post_generation
    def purposes(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if not create:
            return
        if extracted is None:
            extracted = Purpose.objects.for_tenant(self.tenant)
        self.purposes.set(extracted)


def record_for(tenant: Tenant, subject_key: str, level: str | None = None,
               **decisions: bool) -> list[ConsentRecord]:
    """``record_for(t, "sk", personalization=True)`` through the real service."""
    return record_consents(tenant=tenant, subject_key=subject_key, decisions=decisions,
                           level=level)


def subject_key(n: int | str) -> str:
    """A syntactically real subject key (64 hex chars) for tests that skip pseudonymizing."""
    return f"{n!s:0>64}"[-64:]
