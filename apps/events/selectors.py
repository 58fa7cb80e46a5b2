"""Reads of the events app. Everything is scoped to one tenant (STYLE S4)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import FloatField, QuerySet, Value

from apps.core.subject_data import retention_period
from apps.events import tenant_settings as events_settings
from apps.events.models import (
    Event,
    EventProperty,
    EventType,
    FieldKind,
    Item,
    ItemAttribute,
    value_range,
)
from apps.events.validation import is_clean_text
from apps.tenants.config_memo import memoize_tenant_config
from apps.tenants.models import Tenant
from apps.tenants.services import setting_value

# Tenant settings (``Tenant.settings``) read by this app, with the platform defaults.
# Declared in apps/events/tenant_settings.py.
UNKNOWN_ITEMS_SETTING = events_settings.UNKNOWN_ITEMS.name  # "create" | "reject"
UNKNOWN_ITEMS_CREATE = "create"
UNKNOWN_ITEMS_REJECT = "reject"
HISTORY_CAP_SETTING = events_settings.HISTORY_CAP.name      # events kept per subject
DEFAULT_HISTORY_CAP = events_settings.HISTORY_CAP.default
DEFAULT_RETENTION_DAYS = 365  # the retention app's default for "events"
RETENTION_SETTING = events_settings.RETENTION_DAYS.name  # optional; can only shorten the policy
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the oldest event when events are kept forever


@dataclass(frozen=True, slots=True)
class EventTypeSpec:
    code: str
    weight: float
    weight_from_value: bool
    purpose: str
    #: The values accepted at ingestion, bounds included (``EventType.min_value``/``max_value``,
    #: else ``VALUE_LIMIT``).
    min_value: float
    max_value: float


@dataclass(frozen=True, slots=True)
class EventSchema:
    """A tenant's event schema as plain data: what ingestion and training need."""

    types: dict[str, EventTypeSpec]
    properties: dict[str, str]  # name -> FieldKind value

    def weight_of(self, type_code: str, value: float | None) -> float:
        """The training weight of one event (0 for an unknown type)."""
        spec = self.types.get(type_code)
        if spec is None:
            return 0.0
        if spec.weight_from_value:
            return max(float(value or 0.0), 0.0)
        return spec.weight


def get_event_schema(*, tenant: Tenant) -> EventSchema:
    """The tenant's active event types and allow-listed properties (it is read for every
    ingested batch: memoized per configuration revision, so that a change in the admin
    applies to the next batch). Shared: do not mutate it."""
    return memoize_tenant_config(tenant, "event_schema", lambda: _load_event_schema(tenant))


def _load_event_schema(tenant: Tenant) -> EventSchema:
    """One query."""
    # order_by(): no default ordering inside a UNION (SQLite refuses it).
    types = (EventType.objects.for_tenant(tenant).filter(is_active=True).order_by()
             .values_list(Value("t"), "code", "weight", "weight_from_value", "purpose",
                          "min_value", "max_value"))
    no_bound = Value(None, output_field=FloatField())
    properties = (EventProperty.objects.for_tenant(tenant).order_by()
                  .values_list(Value("p"), "name", Value(0.0), Value(False), "kind",
                               no_bound, no_bound))
    schema = EventSchema(types={}, properties={})
    rows = types.union(properties, all=True)
    for row_kind, name, weight, from_value, purpose_or_kind, low, high in rows:
        if row_kind == "t":
            schema.types[name] = EventTypeSpec(name, weight, from_value, purpose_or_kind,
                                               *value_range(low, high))
        else:
            schema.properties[name] = purpose_or_kind
    return schema


def get_item_attribute_kinds(*, tenant: Tenant) -> dict[str, str]:
    return dict(ItemAttribute.objects.for_tenant(tenant).values_list("name", "kind"))


def get_item(*, tenant: Tenant, external_id: str) -> Item:
    """One item by the client's id; ``Item.DoesNotExist`` when missing (or another tenant's)."""
    return Item.objects.for_tenant(tenant).get(external_id=external_id)


def list_items(*, tenant: Tenant, active: bool | None = None) -> QuerySet[Item]:
    items = Item.objects.for_tenant(tenant)
    return items if active is None else items.filter(is_active=active)


def list_active_item_ids(*, tenant: Tenant) -> QuerySet[Item]:
    """Primary keys of the items that may be recommended (inactive items never are)."""
    return Item.objects.for_tenant(tenant).filter(is_active=True).values_list("pk", flat=True)


def list_events(
    *, tenant: Tenant, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[Event]:
    """A tenant's events, optionally within ``[since, until)`` of ``occurred_at``."""
    events = Event.objects.for_tenant(tenant)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    return events


def list_subject_events(*, tenant: Tenant, subject_key: str) -> QuerySet[Event]:
    """One subject's events, newest first (uses the (tenant, subject_key, occurred_at) index)."""
    return (Event.objects.for_tenant(tenant).filter(subject_key=subject_key)
            .order_by("-occurred_at", "-pk"))


def list_training_interactions(
    *, tenant: Tenant, since: datetime | None = None
) -> QuerySet[Event]:
    """``(subject_key, item_id, type, value)`` rows for building the training matrix. The
    caller filters subjects by *current* consent and applies :meth:`EventSchema.weight_of`."""
    return list_events(tenant=tenant, since=since).values_list(
        "subject_key", "item_id", "type", "value")


#: The longest subject key the events table holds (HMAC-SHA256 pseudonyms in hex).
TRAINING_KEY_CHARS = 64

_TRAINING_RECORDS = """
SELECT type, string_agg(decode(subject_key, 'hex') || int8send(item_id)
                        || float8send(COALESCE(value, 0)) || timestamptz_send(occurred_at),
                        ''::bytea),
       count(*)
FROM {table}
WHERE tenant_id = %(tenant)s AND occurred_at >= %(since)s
      AND ctid >= %(low)s::tid AND ctid < %(high)s::tid
GROUP BY type
HAVING type = ANY(%(types)s)
"""


def training_records_sql() -> tuple[str, str]:
    """PostgreSQL only: ``(statement, table)`` for the training snapshot's reader
    (``apps.modeling.services.dataset``). The statement returns one chunk of a tenant's
    events (the block range ``low``..``high`` of the table, since ``since``) as one row per
    event type among ``types``: the type, the events as fixed-width binary records (subject
    key decoded from hex, item id, value, time) and their count; parameters are bound by
    name. Grouping by type costs one hash of a short string per event instead of a filter
    and a position lookup per event (12-17 % of the server's CPU); the other types' groups
    are dropped unsent. A key of fewer than 64 hex characters makes its group's records
    shorter than ``count`` times the record size (the column holds at most 64 characters:
    :data:`TRAINING_KEY_CHARS`), a key that is not hex fails ``decode``. The events app
    owns the SQL on its table."""
    table = Event._meta.db_table
    if Event._meta.get_field("subject_key").max_length != TRAINING_KEY_CHARS:
        raise ImproperlyConfigured("training records assume subject keys of at most "
                                   f"{TRAINING_KEY_CHARS} characters")
    return _TRAINING_RECORDS.format(table=connection.ops.quote_name(table)), table


def history_cap(tenant: Tenant) -> int:
    """Events kept per subject for this tenant (at least 1)."""
    return setting_value(tenant, events_settings.HISTORY_CAP)


def events_retention_period(tenant: Tenant) -> timedelta | None:
    """How long the tenant keeps events: the retention app's ``events`` policy (default
    365 days); ``None`` when events are kept until erased. The older tenant setting
    ``event_retention_days``, when present, can only shorten it (the shorter period wins)."""
    period = retention_period(tenant, "events")
    legacy = setting_value(tenant, events_settings.RETENTION_DAYS)
    if legacy is not None:
        shorter = timedelta(days=legacy)
        return shorter if period is None or shorter < period else period
    return period


def retention_days(tenant: Tenant) -> int:
    """:func:`events_retention_period` in whole days (rounded up; since 1970 when events
    are kept until erased)."""
    period = events_retention_period(tenant)
    if period is None:
        return (datetime.now(UTC) - EPOCH).days + 1
    return max(math.ceil(period / timedelta(days=1)), 1)


def oldest_acceptable_occurred_at(tenant: Tenant, now: datetime) -> datetime:
    """Ingestion refuses events the retention policy would delete at once: older than the
    tenant's events retention period."""
    period = events_retention_period(tenant)
    return now - period if period is not None else EPOCH


def unknown_items_policy(tenant: Tenant) -> str:
    return setting_value(tenant, events_settings.UNKNOWN_ITEMS)


def kind_accepts(kind: str, value: Any) -> bool:
    """Whether a JSON value has the declared kind (booleans are not numbers here)."""
    if kind == FieldKind.STRING:
        return isinstance(value, str) and is_clean_text(value)
    if kind == FieldKind.BOOLEAN:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == FieldKind.INTEGER:
        return isinstance(value, int)
    if kind == FieldKind.NUMBER:
        return isinstance(value, int | float) and value == value and abs(value) != float("inf")
    return False


def count_ingestion_by_day(*, tenant: Tenant, days: int = 14,
                           today: Any = None) -> list[dict[str, Any]]:
    """Events offered per UTC day of the last ``days`` days, by outcome and reason (one
    query over the tally, whatever the number of events): ``[{"day", "status", "reason",
    "count"}]``, oldest first."""
    from apps.events.models import IngestionTally

    today = today or datetime.now(UTC).date()
    since = today - timedelta(days=days - 1)
    return list(IngestionTally.objects.for_tenant(tenant).filter(day__gte=since)
                .order_by("day", "status", "reason")
                .values("day", "status", "reason", "count"))
