"""Catalog, per-tenant event schema and interaction events (DESIGN "The path of one event")."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from apps.core.jobs import DurableJob
from apps.tenants.scoping import TenantOwnedModel

DEFAULT_PURPOSE = "personalization"
#: No event value beyond this magnitude is ever stored; a type's declared range narrows it.
VALUE_LIMIT = 1e6
#: The largest training weight a type may give one event: one event never outweighs a
#: thousand views.
MAX_EVENT_WEIGHT = 1000.0


def value_range(min_value: float | None, max_value: float | None) -> tuple[float, float]:
    """The values ingestion accepts for an event type: its declared bounds, else the limit."""
    return (-VALUE_LIMIT if min_value is None else min_value,
            VALUE_LIMIT if max_value is None else max_value)


class FieldKind(models.TextChoices):
    """The JSON type an allow-listed event property or item attribute must have."""

    STRING = "string", "String"
    INTEGER = "integer", "Integer"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Boolean"


class EventType(TenantOwnedModel):
    """One kind of interaction a tenant sends, with its training weight and the purpose it
    serves. Ingestion rejects types a tenant has not declared (or has switched off)."""

    code = models.SlugField(max_length=32, help_text="What clients send as the event's type.")
    weight = models.FloatField(default=1.0, help_text="Confidence of one event in training "
                               f"(0 to {MAX_EVENT_WEIGHT:g}).")
    weight_from_value = models.BooleanField(
        default=False, help_text="Use the event's value as its weight (ratings). The value "
        "is then required and must not be negative.")
    min_value = models.FloatField(
        null=True, blank=True, help_text=f"Smallest value accepted (empty: -{VALUE_LIMIT:,.0f}). "
        "Ingestion rejects others with the reason value_out_of_range.")
    max_value = models.FloatField(
        null=True, blank=True, help_text=f"Largest value accepted (empty: {VALUE_LIMIT:,.0f}); "
        "e.g. 5 for a five-star rating.")
    purpose = models.SlugField(
        max_length=64, default=DEFAULT_PURPOSE,
        help_text="Consent purpose this event type serves; events are stored only while the "
        "subject consents to it.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["tenant_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="eventtype_one_per_code"),
            models.CheckConstraint(condition=models.Q(weight__gte=0),
                                   name="eventtype_weight_not_negative"),
            models.CheckConstraint(condition=models.Q(weight__lte=MAX_EVENT_WEIGHT),
                                   name="eventtype_weight_bounded"),
            models.CheckConstraint(
                condition=(models.Q(min_value__isnull=True)
                           | models.Q(min_value__gte=-VALUE_LIMIT, min_value__lte=VALUE_LIMIT)),
                name="eventtype_min_value_bounded"),
            models.CheckConstraint(
                condition=(models.Q(max_value__isnull=True)
                           | models.Q(max_value__gte=-VALUE_LIMIT, max_value__lte=VALUE_LIMIT)),
                name="eventtype_max_value_bounded"),
            models.CheckConstraint(
                condition=(models.Q(min_value__isnull=True) | models.Q(max_value__isnull=True)
                           | models.Q(min_value__lte=models.F("max_value"))),
                name="eventtype_value_range_ordered"),
        ]

    def __str__(self) -> str:
        return self.code


class EventProperty(TenantOwnedModel):
    """An allow-listed event property. Every other property is dropped at ingestion
    (data minimization, GDPR Art. 5(1)(c)) and reported back to the client."""

    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=FieldKind.choices, default=FieldKind.STRING)

    class Meta:
        ordering = ["tenant_id", "name"]
        verbose_name_plural = "event properties"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="eventproperty_one_per_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ItemAttribute(TenantOwnedModel):
    """An allow-listed catalog attribute; others are dropped from catalog uploads."""

    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=FieldKind.choices, default=FieldKind.STRING)

    class Meta:
        ordering = ["tenant_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="itemattribute_one_per_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Item(TenantOwnedModel):
    """A catalog item, known by the client site's own id. Items are deactivated, never
    deleted (events point at them); inactive items are never recommended."""

    # No index on tenant alone: the unique (tenant, ...) index serves every tenant lookup,
    # and a second one would let a planner with stale statistics (a new tenant's rows) probe
    # it, scanning the tenant's rows, for each key of a batch (apps.core.db).
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    external_id = models.CharField(max_length=256)
    title = models.CharField(max_length=500, blank=True)
    categories = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    auto_created = models.BooleanField(
        default=False, editable=False, help_text="Created by ingestion for an unknown item id.")

    class Meta:
        ordering = ["tenant_id", "external_id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"],
                                    name="item_one_per_external_id"),
        ]

    def __str__(self) -> str:
        return self.title or self.external_id


class Event(TenantOwnedModel):
    """One interaction of a pseudonymous subject with an item. Append-only.

    Holds no raw identifier, no IP address and no user agent; ``properties`` holds only
    allow-listed keys. The hot table: its indexes are exactly those the reads need.
    """

    # Every index below starts with tenant, so the FK's own index would only slow inserts.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    event_id = models.CharField(max_length=128)
    subject_key = models.CharField(max_length=64)
    # Items are never deleted (only deactivated), so nothing reads events by item alone:
    # no index, which keeps bulk inserts cheaper.
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="+", db_index=False)
    type = models.CharField(max_length=32)
    value = models.FloatField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            # Dedupe key: a retried batch stores nothing twice.
            models.UniqueConstraint(fields=["tenant", "event_id"], name="event_one_per_event_id"),
        ]
        indexes = [
            # A subject's history (history cap, export, erasure, session recommendations).
            models.Index(fields=["tenant", "subject_key", "occurred_at"],
                         name="event_subject_time_idx"),
            # A tenant's events over time (training windows, retention, popularity).
            models.Index(fields=["tenant", "occurred_at"], name="event_tenant_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class HistoryCapStatus(TenantOwnedModel):
    """Progress of the per-subject history cap for one tenant, shown in the admin."""

    last_run_at = models.DateTimeField(null=True, blank=True)
    last_cap = models.PositiveIntegerField(default=0)
    last_subjects_checked = models.PositiveIntegerField(default=0)
    last_subjects_capped = models.PositiveIntegerField(default=0)
    last_events_deleted = models.PositiveBigIntegerField(default=0)
    events_deleted_total = models.PositiveBigIntegerField(default=0)
    runs_total = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "history cap status"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="historycapstatus_one_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"history cap of tenant {self.tenant_id}"


class HistoryCapJob(TenantOwnedModel, DurableJob):
    """One ingestion batch's history cap, as a durable job (DESIGN "Tasks"): the row is
    written in the batch's transaction and its task sent after commit, so a lost message
    (a broker restart, a killed worker) is re-sent by the sweeper instead of leaving the
    batch's subjects over their cap until their next batch.

    It names the batch's events by ``event_ids`` (the client's ids, unique per tenant), never
    by subject key: the row holds no pseudonym, and an erased subject's events are simply
    not found. The ids are cleared when the job succeeds; succeeded jobs are pruned after a
    day (:data:`apps.events.services.history.FINISHED_JOBS_KEPT`)."""

    job_task: ClassVar[str] = "apps.events.tasks.enforce_history_cap_task"

    event_ids = models.JSONField(default=list, blank=True)
    events = models.PositiveIntegerField(default=0, help_text="Events in the batch.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "status", "finished_at"],
                         name="historycapjob_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"history cap job {self.pk} of tenant {self.tenant_id}"


class IngestionTally(TenantOwnedModel):
    """Events offered to ingestion per UTC day, by outcome and reason: the counts behind
    the console's "events accepted and rejected" chart. Rejected events are never stored
    (DESIGN "The path of one event"), so their number is kept here, and nothing else: no
    subject, no event id. One row per (tenant, day, status, reason), incremented in the
    ingesting transaction."""

    day = models.DateField()
    status = models.CharField(max_length=16)   # accepted | duplicate | rejected
    reason = models.CharField(max_length=32, blank=True)  # empty for accepted
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "status", "reason"],
                                    name="ingestiontally_one_per_day_outcome"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.status} {self.reason}: {self.count}"
