"""Default event schema every tenant starts with (a tenant provisioner)."""

from __future__ import annotations

from apps.events.models import (
    DEFAULT_PURPOSE,
    EventProperty,
    EventType,
    FieldKind,
    ItemAttribute,
)
from apps.tenants.models import Tenant

# (code, weight, weight_from_value): the defaults; "rating" weighs its value.
DEFAULT_EVENT_TYPES: tuple[tuple[str, float, bool], ...] = (
    ("view", 1.0, False),
    ("click", 2.0, False),
    ("add_to_cart", 4.0, False),
    ("purchase", 8.0, False),
    ("rating", 1.0, True),
)
# Declared value ranges (code -> (min, max)); the other types accept up to VALUE_LIMIT.
# Ratings from 0 to 10 cover five- and ten-point scales; a tenant edits it in the admin.
DEFAULT_VALUE_RANGES: dict[str, tuple[float, float]] = {"rating": (0.0, 10.0)}
# Only non-identifying context is allow-listed by default; tenants add their own.
DEFAULT_EVENT_PROPERTIES: dict[str, str] = {
    "source": FieldKind.STRING,      # where the interaction happened: "search", "home"...
    "position": FieldKind.INTEGER,   # rank of the item in the list shown
    "price": FieldKind.NUMBER,
    "quantity": FieldKind.INTEGER,
}
DEFAULT_ITEM_ATTRIBUTES: dict[str, str] = {
    "author": FieldKind.STRING,
    "brand": FieldKind.STRING,
    "language": FieldKind.STRING,
    "year": FieldKind.INTEGER,
    "price": FieldKind.NUMBER,
}


def provision_event_schema(tenant: Tenant) -> None:
    """Give ``tenant`` the default event types, properties and item attributes.

    Idempotent (registered as a tenant provisioner, re-run by ``seed_demo``): rows a tenant
    already has, possibly edited in the admin, are left alone.
    """
    EventType.objects.bulk_create(
        [EventType(tenant=tenant, code=code, weight=weight, weight_from_value=from_value,
                   purpose=DEFAULT_PURPOSE,
                   min_value=DEFAULT_VALUE_RANGES.get(code, (None, None))[0],
                   max_value=DEFAULT_VALUE_RANGES.get(code, (None, None))[1])
         for code, weight, from_value in DEFAULT_EVENT_TYPES],
        ignore_conflicts=True,
    )
    EventProperty.objects.bulk_create(
        [EventProperty(tenant=tenant, name=name, kind=kind)
         for name, kind in DEFAULT_EVENT_PROPERTIES.items()],
        ignore_conflicts=True,
    )
    ItemAttribute.objects.bulk_create(
        [ItemAttribute(tenant=tenant, name=name, kind=kind)
         for name, kind in DEFAULT_ITEM_ATTRIBUTES.items()],
        ignore_conflicts=True,
    )
