"""The item catalog: batch upserts from a client's feed, deactivation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.events.models import Item
from apps.events.selectors import get_item_attribute_kinds, kind_accepts
from apps.events.validation import reported_name
from apps.tenants.models import Tenant

MAX_ITEMS_PER_BATCH = 1000
MAX_ATTRIBUTE_STRING = 1024
REPORTED_NAME_LENGTH = 64


@dataclass
class ItemUpsertReport:
    received: int = 0
    created: int = 0
    updated: int = 0
    dropped_attributes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "created": self.created, "updated": self.updated,
                "dropped_attributes": self.dropped_attributes}


def _minimize_attributes(
    attributes: Mapping[str, Any], kinds: Mapping[str, str], dropped: Counter[str]
) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in attributes.items():
        kind = kinds.get(name)
        if (kind is not None and kind_accepts(kind, value)
                and not (isinstance(value, str) and len(value) > MAX_ATTRIBUTE_STRING)):
            kept[name] = value
        else:
            dropped[reported_name(name, REPORTED_NAME_LENGTH)] += 1
    return kept


def upsert_items(
    *, tenant: Tenant, items: Sequence[Mapping[str, Any]], actor: Any = None
) -> ItemUpsertReport:
    """Create or replace up to 1,000 catalog items of ``tenant`` in one statement.

    ``items`` are validated mappings with ``item`` (the client's id), ``title``,
    ``categories``, ``attributes`` and ``active``; a missing title becomes the id.
    Attributes not allow-listed for the tenant (or of the wrong type) are dropped and
    counted. Idempotent: sending the same batch twice leaves the same rows. The whole batch
    is refused (nothing written) when it repeats an item id or is too large. One audit entry
    per batch (django-auditlog does not see bulk writes).
    """
    if len(items) > MAX_ITEMS_PER_BATCH:
        raise ApplicationError(f"At most {MAX_ITEMS_PER_BATCH} items per request.",
                               code="too_many_items")
    counts = Counter(item["item"] for item in items)
    repeated = sorted(external_id for external_id, n in counts.items() if n > 1)
    if repeated:
        # 409: the batch is well formed, but two of its entries claim the same item (a JSON
        # schema cannot say "unique by key", so this is not a shape error).
        raise ApplicationError("An item id appears more than once in the batch.",
                               code="duplicate_item", status_code=409,
                               details={"items": repeated[:20]})
    report = ItemUpsertReport(received=len(items))
    if not items:
        return report
    kinds = get_item_attribute_kinds(tenant=tenant)
    dropped: Counter[str] = Counter()
    rows = [
        Item(
            tenant=tenant,
            external_id=item["item"],
            title=item.get("title") or item["item"],
            categories=list(dict.fromkeys(item.get("categories") or [])),
            attributes=_minimize_attributes(item.get("attributes") or {}, kinds, dropped),
            is_active=item.get("active", True),
            auto_created=False,
        )
        for item in items
    ]
    with transaction.atomic():
        existing = set(
            Item.objects.for_tenant(tenant).filter(external_id__in=list(counts))
            .values_list("external_id", flat=True)
        )
        Item.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["tenant", "external_id"],
            update_fields=["title", "categories", "attributes", "is_active", "auto_created",
                           "updated_at"],
        )
        report.created = len(items) - len(existing)
        report.updated = len(existing)
        report.dropped_attributes = dict(dropped)
        record(tenant, "catalog.items_upserted", actor, target="events.item",
               details={"created": report.created, "updated": report.updated})
    return report


@transaction.atomic
def deactivate_item(*, tenant: Tenant, external_id: str, actor: Any = None) -> Item:
    """Mark one item inactive so it is never recommended again. Idempotent; events that
    point at it are kept. Raises ``ApplicationError`` (404) for an unknown item, the same
    for another tenant's."""
    item = Item.objects.for_tenant(tenant).select_for_update().filter(
        external_id=external_id).first()
    if item is None:
        raise ApplicationError("No such item.", code="not_found", status_code=404)
    if item.is_active:
        item.is_active = False
        item.save(update_fields=["is_active", "updated_at"])  # captured by django-auditlog
        record(tenant, "catalog.item_deactivated", actor, target=item)
    return item
