"""Per-request readings that ride on the API-key lookup.

A hot endpoint may need one small tenant row on every request (modeling needs its serving
state: which model version is active, its erasure revision, the catalog stamp). Rather than
spend a query of its own, an app registers that row here and API-key authentication reads
it as scalar subqueries of its one query, in the same statement snapshot as the key.

A reading is handed out once (:func:`take_request_reading`): the first consumer in the
request gets it, and any later call, or anything still holding the tenant object after the
request, reads the database itself. So a reading is never older than the request it came
with, which is what makes it safe for privacy-critical state such as an erasure patch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from apps.tenants.models import Tenant

_ATTRIBUTE = "_request_readings"
_MISSING = object()


@dataclass(frozen=True)
class RequestReading:
    name: str
    rows: Callable[[], QuerySet]  # the tenant-owned model's rows, unscoped (scoped below)
    fields: tuple[str, ...]


_readings: dict[str, RequestReading] = {}


def register_request_reading(name: str, rows: Callable[[], QuerySet],
                             fields: tuple[str, ...]) -> None:
    """Apps call this from ``AppConfig.ready``. ``rows()`` must return a tenant-owned
    model's queryset holding at most one row per tenant (a unique ``tenant`` constraint)."""
    _readings[name] = RequestReading(name, rows, fields)


def _alias(name: str, field: str) -> str:
    return f"reading__{name}__{field}"


def with_request_readings(api_keys: QuerySet) -> QuerySet:
    """``api_keys`` annotated with every registered reading of the key's tenant."""
    annotations: dict[str, Subquery] = {}
    for reading in _readings.values():
        # Scoped to the authenticating key's tenant: the subquery cannot reach another.
        row = reading.rows().filter(tenant_id=OuterRef("tenant_id"))
        for field in reading.fields:
            annotations[_alias(reading.name, field)] = Subquery(row.values(field)[:1])
    return api_keys.annotate(**annotations) if annotations else api_keys


def attach_request_readings(tenant: Tenant, api_key: Any) -> None:
    """Move the annotated values of ``api_key`` onto ``tenant`` for this request."""
    setattr(tenant, _ATTRIBUTE, {
        reading.name: tuple(getattr(api_key, _alias(reading.name, f)) for f in reading.fields)
        for reading in _readings.values()
    })


def take_request_reading(tenant: Tenant, name: str) -> tuple[Any, ...] | None:
    """The reading ``name`` that came with this request's tenant, at most once; ``None``
    when there is none (not an API request, or already taken): read the database then.
    A tenant without the row gets a tuple of ``None``."""
    held = getattr(tenant, _ATTRIBUTE, None)
    if not held:
        return None
    value = held.pop(name, _MISSING)
    return None if value is _MISSING else value
