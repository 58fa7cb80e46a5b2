"""The events app's subject data: interaction events (DESIGN "Declarations")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from apps.core.subject_data import (
    Correction,
    Expiry,
    ModelEffect,
    PeriodOf,
    RetentionRule,
    SubjectDataStore,
    declare,
    describe_period,
    frozen,
    subject_rows,
)
from apps.events.models import Event
from apps.events.selectors import history_cap, list_subject_events
from apps.tenants.models import Tenant

_export, _erase = subject_rows(Event, (
    "event_id", "item__external_id", "type", "value", "occurred_at", "properties",
    "created_at"))


def _rectify(tenant: Tenant, subject_key: str, correction: Correction) -> dict[str, Any]:
    """Art. 16: interactions the subject says are wrong are deleted from their history
    (``delete_events``: event ids)."""
    event_ids = correction.changes.get("delete_events") or []
    if not event_ids:
        return {}
    deleted, _ = list_subject_events(tenant=tenant, subject_key=subject_key).filter(
        event_id__in=event_ids).delete()
    return {"events_deleted": deleted}


def _expired(tenant: Tenant, cutoff: datetime) -> QuerySet[Event]:
    # Served by event_tenant_time_idx (tenant, occurred_at).
    return Event.objects.for_tenant(tenant).filter(occurred_at__lt=cutoff)


def _text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("Interactions are kept at most %(period)s, and only your newest "
                   "%(count)s; older ones are deleted automatically, and the recommendation "
                   "models are retrained without them within a day.") % {
        "period": describe_period(period("events")), "count": history_cap(tenant)}


declare(SubjectDataStore(
    name="events.event",
    category=gettext_noop("interaction events"),
    models=("events.Event",),
    order=100,
    export=_export,
    erase=_erase,
    restrict=frozen("Ingestion refuses new events of the subject, training and serving "
                    "leave them out, and retention keeps their events."),
    rectify=_rectify,
    retention=RetentionRule(
        category="events",
        text=_text,
        expiry=Expiry(
            label=gettext_lazy("Interaction events"),
            description=gettext_lazy(
                "Events older than the period (by occurred_at) are deleted; models "
                "trained on them are retrained. Default 365 days."),
            default_days=365, order=10, expired=_expired),
        dated=True),
    model_effect=ModelEffect.TRAINING_DATA,
))
