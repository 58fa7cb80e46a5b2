"""Retention test data: a subject's history written *at* a given time (time_machine), through
the real services, so ledger rows, state rows, audit entries and events carry the
timestamps production would give them."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine

from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.consent.models import PrivacyNotice
from apps.consent.services import record_consents
from apps.events.models import Event
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize
from tests.factories.consent import PrivacyNoticeFactory
from tests.factories.events import EventFactory, ItemFactory

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
