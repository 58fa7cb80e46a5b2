"""Reading the audit trail (STYLE S4): what other apps may know of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from apps.audit.models import AuditEvent
from apps.tenants.models import Tenant


def list_audit_events_about(*, tenant: Tenant | int, target: Any) -> QuerySet[AuditEvent]:
    """The tenant's entries whose target is ``target`` (a model instance), oldest first."""
    return (AuditEvent.objects.for_tenant(tenant)
            .filter(target_type=target._meta.label_lower, target_id=str(target.pk))
            .order_by("sequence"))


def list_audit_events_before(*, tenant: Tenant | int, cutoff: datetime) -> QuerySet[AuditEvent]:
    """The tenant's entries that occurred before ``cutoff`` (what retention may prune)."""
    return AuditEvent.objects.for_tenant(tenant).filter(occurred_at__lt=cutoff)
