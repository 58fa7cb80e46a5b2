"""Event ingestion: pseudonymize -> consent gate -> minimize -> dedupe -> bulk insert.

The hot path of the platform. A batch of up to 1,000 events costs a constant number of
queries whatever its size: the event schema (2), the GPC opt-out when asked (the consent
service's own), the consent views (1 call), the items (1, plus 2 when unknown items are
created) and one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` that both stores the batch
and tells which events were already there. No per-event ORM object is built.

Each event is judged on its own: a valid event in a batch with invalid ones is stored, and
every index gets a status and, unless accepted, a reason code.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.core.metrics import count_events
from apps.events.models import FieldKind
from apps.events.selectors import (
    UNKNOWN_ITEMS_REJECT,
    EventSchema,
    EventTypeSpec,
    get_event_schema,
    oldest_acceptable_occurred_at,
    unknown_items_policy,
)
from apps.events.services.history import request_history_cap
from apps.events.services.storage import (
    add_to_tally,
    create_items,
    fetch_item_pks,
    insert_events,
)
from apps.events.validation import is_clean_text, reported_name
from apps.tenants.config_memo import memoize_tenant_config
from apps.tenants.models import Tenant
from apps.tenants.services import SUBJECT_ID_MAX_LENGTH, pseudonymize_many

logger = logging.getLogger("events.ingestion")

MAX_EVENTS_PER_BATCH = 1000
MAX_EVENT_ID_LENGTH = 128
MAX_ITEM_ID_LENGTH = 256
MAX_TIMESTAMP_LENGTH = 64
MAX_PROPERTIES = 64
MAX_PROPERTY_STRING = 1024
REPORTED_NAME_LENGTH = 64
FUTURE_TOLERANCE = timedelta(minutes=5)
_INT64 = 2**63


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Reason(StrEnum):
    """Why an event was not accepted (the ``reason`` of a result)."""

    # The event itself is malformed.
    INVALID_EVENT = "invalid_event"              # not a JSON object
    INVALID_EVENT_ID = "invalid_event_id"        # missing, not a string, empty or > 128
    INVALID_SUBJECT = "invalid_subject"          # missing, not a string, blank or > 512
    INVALID_ITEM = "invalid_item"                # missing, not a string, empty or > 256
    INVALID_TYPE = "invalid_type"                # missing or not a string
    UNKNOWN_TYPE = "unknown_type"                # not an active type of the tenant's schema
    INVALID_OCCURRED_AT = "invalid_occurred_at"  # missing, not ISO 8601, or no time zone
    INVALID_VALUE = "invalid_value"              # not a finite number (required for ratings)
    VALUE_OUT_OF_RANGE = "value_out_of_range"    # outside the type's range (default ±1e6)
    INVALID_PROPERTIES = "invalid_properties"    # not an object, or more than 64 keys
    # Minimization: outside [now - retention, now + 5 min].
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    # Consent gate.
    RESTRICTED = "restricted"                    # processing restricted (GDPR Art. 18)
    NO_CONSENT = "no_consent"                    # the type's purpose is not allowed now
    LEVEL = "level"                              # personalization level is not "full"
    # Catalog.
    UNKNOWN_ITEM = "unknown_item"                # tenant setting unknown_items = "reject"
    # Dedupe (status "duplicate").
    DUPLICATE = "duplicate"                      # stored by an earlier request
    DUPLICATE_IN_BATCH = "duplicate_in_batch"    # same event_id earlier in this batch


@dataclass
class IngestReport:
    """What ``POST /api/v1/events`` answers."""

    results: list[dict[str, Any]]
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped_properties: dict[str, int] = field(default_factory=dict)
    # Not part of the response: subjects with newly stored events (for the history cap).
    stored_subject_keys: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        return {"results": self.results, "accepted": self.accepted,
                "duplicates": self.duplicates, "rejected": self.rejected,
                "dropped_properties": self.dropped_properties}


class _Rejected(Exception):  # noqa: N818 - control flow inside one event's parsing
    def __init__(self, reason: Reason) -> None:
        self.reason = reason


@dataclass(slots=True)
class _Parsed:
    index: int
    event_id: str
    subject: str
    item: str
    spec: EventTypeSpec
    occurred_at: datetime
    value: float | None
    properties: dict[str, Any]
    dropped: list[str]


def _accepts(kind: str, value: Any) -> bool:
    cls = type(value)
    if kind == FieldKind.STRING:
        return cls is str and len(value) <= MAX_PROPERTY_STRING and is_clean_text(value)
    if kind == FieldKind.INTEGER:
        return cls is int and -_INT64 <= value < _INT64
    if kind == FieldKind.NUMBER:
        if cls is int:
            return -_INT64 <= value < _INT64
        return cls is float and math.isfinite(value)
    if kind == FieldKind.BOOLEAN:
        return cls is bool
    return False


def _is_clean_id(value: Any, max_length: int) -> bool:
    """An id a client sent: a non-empty string of at most ``max_length`` clean characters."""
    return type(value) is str and 0 < len(value) <= max_length and is_clean_text(value)


def _parse_event(
    index: int, raw: Any, schema: EventSchema, oldest: datetime, newest: datetime
) -> _Parsed:
    """Validate one event; raise :class:`_Rejected` with the first problem found."""
    if type(raw) is not dict:
        raise _Rejected(Reason.INVALID_EVENT)
    event_id = raw.get("event_id")
    if not _is_clean_id(event_id, MAX_EVENT_ID_LENGTH):
        raise _Rejected(Reason.INVALID_EVENT_ID)
    subject = raw.get("subject")
    if not (_is_clean_id(subject, SUBJECT_ID_MAX_LENGTH) and subject.strip()):
        raise _Rejected(Reason.INVALID_SUBJECT)
    item = raw.get("item")
    if not _is_clean_id(item, MAX_ITEM_ID_LENGTH):
        raise _Rejected(Reason.INVALID_ITEM)
    type_code = raw.get("type")
    if type(type_code) is not str:
        raise _Rejected(Reason.INVALID_TYPE)
    spec = schema.types.get(type_code)
    if spec is None:
        raise _Rejected(Reason.UNKNOWN_TYPE)
    stamp = raw.get("occurred_at")
    if type(stamp) is not str or len(stamp) > MAX_TIMESTAMP_LENGTH:
        raise _Rejected(Reason.INVALID_OCCURRED_AT)
    try:
        occurred_at = datetime.fromisoformat(stamp)
        if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
            raise _Rejected(Reason.INVALID_OCCURRED_AT)
        if occurred_at < oldest:
            raise _Rejected(Reason.TOO_OLD)
        if occurred_at > newest:
            raise _Rejected(Reason.IN_FUTURE)
    except (ValueError, OverflowError):
        # Unparseable, or a year-1/9999 stamp whose offset leaves datetime's range.
        raise _Rejected(Reason.INVALID_OCCURRED_AT) from None
    value = raw.get("value")
    if value is not None:
        cls = type(value)
        if cls is int:
            if not -_INT64 <= value < _INT64:
                raise _Rejected(Reason.INVALID_VALUE)
            value = float(value)
        elif cls is not float or not math.isfinite(value):
            raise _Rejected(Reason.INVALID_VALUE)
    if spec.weight_from_value and (value is None or value < 0):
        raise _Rejected(Reason.INVALID_VALUE)
    # One subject must not steer training with an absurd value (a rating of 1e308): a
    # value outside its type's range is refused, never stored (issue 15).
    if value is not None and not spec.min_value <= value <= spec.max_value:
        raise _Rejected(Reason.VALUE_OUT_OF_RANGE)
    raw_properties = raw.get("properties")
    properties: dict[str, Any] = {}
    dropped: list[str] = []
    if raw_properties is not None:
        if type(raw_properties) is not dict or len(raw_properties) > MAX_PROPERTIES:
            raise _Rejected(Reason.INVALID_PROPERTIES)
        allowed = schema.properties
        for name, prop in raw_properties.items():
            kind = allowed.get(name)
            if kind is not None and _accepts(kind, prop):
                properties[name] = prop
            else:
                dropped.append(reported_name(name, REPORTED_NAME_LENGTH))
    return _Parsed(index, event_id, subject, item, spec, occurred_at, value, properties,
                   dropped)


def _gate(view: Any, purpose: str) -> Reason | None:
    """The consent gate for one event (DESIGN step 3). ``view`` is the subject's
    ``SubjectConsentView``, or ``None`` when the consent service knows nothing of them."""
    if view is None:
        return Reason.NO_CONSENT
    if view.restricted:
        return Reason.RESTRICTED
    # An objection (GDPR Art. 21) stops the processing like a withdrawn consent.
    if view.objected or purpose not in view.allowed_purposes:
        return Reason.NO_CONSENT
    if view.level != "full":
        return Reason.LEVEL
    return None


#: Item pks a process remembers per tenant (an id maps to one pk for the item's lifetime).
ITEM_MEMO_LIMIT = 200_000


def _resolve_items(
    *, tenant: Tenant, external_ids: set[str], create_missing: bool, now: datetime
) -> dict[str, int]:
    """``{external_id: pk}`` for the batch's items; missing ones are created (active, titled
    by their id) when ``create_missing``. No query when the process has seen them all
    before; else one, two when items are created (three when a concurrent batch created
    some of them first).

    The memo holds only items whose rows were committed (it learns on commit), and a
    deleted item (the admin can delete one no event refers to) changes the tenant's
    configuration revision, which empties it in every process."""
    if not external_ids:
        return {}
    known: dict[str, int] = memoize_tenant_config(tenant, "item_pks", dict)
    found = {external_id: known[external_id] for external_id in external_ids
             if external_id in known}
    wanted = external_ids.difference(found)
    if wanted:
        learned = fetch_item_pks(tenant_id=tenant.pk, external_ids=wanted)
        missing = wanted.difference(learned)
        if missing and create_missing:
            learned.update(create_items(tenant_id=tenant.pk, external_ids=missing, now=now))
            raced = missing.difference(learned)
            if raced:
                learned.update(fetch_item_pks(tenant_id=tenant.pk, external_ids=raced))
        found.update(learned)

        def remember() -> None:
            if len(known) + len(learned) > ITEM_MEMO_LIMIT:
                known.clear()
            known.update(learned)

        transaction.on_commit(remember)
    return found


def ingest_events(
    *, tenant: Tenant, events: Sequence[Any], gpc: bool = False, actor: Any = None
) -> IngestReport:
    """Store the acceptable events of one batch and report on every one of them.

    Steps (DESIGN "The path of one event"): 1. subjects are pseudonymized at once and the
    raw ids go no further (never stored, never logged); with ``gpc`` (a ``Sec-GPC: 1``
    request) the consent service's GPC opt-out is applied to the batch's subjects first;
    2. the consent gate: the subject must not be restricted, must allow the purpose the
    tenant's schema maps the type to, and must be at level ``full``; 3. minimization:
    properties not allow-listed are dropped and counted, timestamps outside
    ``[now - the events retention period, now + 5 min]`` are rejected; 4. dedupe on
    ``(tenant, event_id)``; 5. unknown items are created or rejected per the tenant's
    ``unknown_items`` setting; 6. one bulk insert.

    Idempotent: re-sending a batch stores nothing twice and reports ``duplicate``. Atomic:
    an error stores nothing. After commit, the history cap task is enqueued for the
    subjects that got new events. Raises ``ApplicationError`` for a batch that is not a
    list of at most 1,000 entries.
    """
    if not isinstance(events, list | tuple):
        raise ApplicationError("'events' must be a list.", code="invalid_envelope")
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise ApplicationError(f"At most {MAX_EVENTS_PER_BATCH} events per request.",
                               code="too_many_events")
    now = timezone.now()
    oldest = oldest_acceptable_occurred_at(tenant, now)
    newest = now + FUTURE_TOLERANCE
    schema = get_event_schema(tenant=tenant)

    count = len(events)
    statuses: list[Status] = [Status.REJECTED] * count
    reasons: list[Reason | None] = [None] * count
    parsed: list[_Parsed] = []
    for index, raw in enumerate(events):
        try:
            parsed.append(_parse_event(index, raw, schema, oldest, newest))
        except _Rejected as rejection:
            reasons[index] = rejection.reason

    # 1. Pseudonymize; from here on only subject keys exist.
    keys = pseudonymize_many(tenant, {event.subject for event in parsed})
    for event in parsed:
        event.subject = keys[event.subject]
    del keys
    subject_keys = {event.subject for event in parsed}

    with transaction.atomic():
        from apps.consent.selectors import get_subject_consent_views
        from apps.consent.services import apply_gpc_opt_out

        if gpc and subject_keys:
            apply_gpc_opt_out(tenant=tenant, subject_keys=sorted(subject_keys), actor=actor)
        # 2. Consent gate: one call for the whole batch.
        views = get_subject_consent_views(tenant=tenant, subject_keys=subject_keys) if (
            subject_keys) else {}
        gated: list[_Parsed] = []
        for event in parsed:
            reason = _gate(views.get(event.subject), event.spec.purpose)
            if reason is None:
                gated.append(event)
            else:
                reasons[event.index] = reason

        # 5. Items: resolve (and create, or reject, the unknown ones).
        create_missing = unknown_items_policy(tenant) != UNKNOWN_ITEMS_REJECT
        item_pks = _resolve_items(tenant=tenant, external_ids={e.item for e in gated},
                                  create_missing=create_missing, now=now)

        # 4 + 6. Dedupe inside the batch here, against stored events in the insert.
        tenant_id = tenant.pk
        first_of: set[str] = set()
        candidates: list[_Parsed] = []
        item_column: list[int] = []
        for event in gated:
            item_pk = item_pks.get(event.item)
            if item_pk is None:
                reasons[event.index] = Reason.UNKNOWN_ITEM
                continue
            if event.event_id in first_of:
                statuses[event.index] = Status.DUPLICATE
                reasons[event.index] = Reason.DUPLICATE_IN_BATCH
                continue
            first_of.add(event.event_id)
            candidates.append(event)
            item_column.append(item_pk)
        inserted = insert_events(
            tenant_id=tenant_id,
            received_at=now,
            event_ids=[e.event_id for e in candidates],
            subject_keys=[e.subject for e in candidates],
            item_pks=item_column,
            types=[e.spec.code for e in candidates],
            values=[e.value for e in candidates],
            occurred_at=[e.occurred_at for e in candidates],
            # Values are checked: strings, 64-bit integers, finite floats, booleans.
            properties=[orjson.dumps(e.properties).decode() if e.properties else "{}"
                        for e in candidates],
        )

        stored_subjects: set[str] = set()
        for event in candidates:
            if event.event_id in inserted:
                statuses[event.index] = Status.ACCEPTED
                stored_subjects.add(event.subject)
            else:
                statuses[event.index] = Status.DUPLICATE
                reasons[event.index] = Reason.DUPLICATE
        # 3. Minimization dropped what is not allow-listed while parsing; report it for the
        # events that got past the gate and the catalog (a retry reports the same).
        dropped: Counter[str] = Counter()
        for event in gated:
            if event.dropped and statuses[event.index] is not Status.REJECTED:
                dropped.update(event.dropped)
        if stored_subjects:
            # A durable job, in this transaction: its task is sent after commit.
            request_history_cap(tenant=tenant, event_ids=sorted(inserted))

    results = [
        {"index": index, "status": status.value,
         "reason": reason.value if reason is not None else None}
        for index, (status, reason) in enumerate(zip(statuses, reasons, strict=True))
    ]
    totals = Counter(statuses)
    # The console's per-day counts (rejected events are not stored anywhere else).
    add_to_tally(tenant_id=tenant.pk, day=now.date(), now=now, counts=Counter(
        (status.value, reason.value if reason is not None and status is not Status.ACCEPTED
         else "") for status, reason in zip(statuses, reasons, strict=True)))
    report = IngestReport(
        results=results,
        accepted=totals[Status.ACCEPTED],
        duplicates=totals[Status.DUPLICATE],
        rejected=totals[Status.REJECTED],
        dropped_properties=dict(dropped),
        stored_subject_keys=frozenset(stored_subjects),
    )
    count_events(tenant.slug, ((status.value, reason.value if reason is not None else None)
                               for status, reason in zip(statuses, reasons, strict=True)))
    logger.debug("events.ingested tenant_id=%s accepted=%s duplicates=%s rejected=%s",
                 tenant_id, report.accepted, report.duplicates, report.rejected)
    return report
