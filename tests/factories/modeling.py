"""Modeling test data: a catalog, consenting subjects and events with planted structure.

Items, consent and tenants go through the real services; events are bulk-inserted rows
(ingestion has its own tests), each with a distinct time so hold-out splits are exact.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from django.utils import timezone

from apps.events.models import Event, Item
from apps.events.services import upsert_items
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize
from tests.factories.events import grant_consent

#: Small, fast, deterministic settings for tests (one thread, no extra search candidates).
FAST_SETTINGS: dict[str, Any] = {
    "model_factors": 8, "model_iterations": 12, "model_regularization": 0.05,
    "model_search_seconds": 0, "model_min_support": 2, "model_threads": 1,
    "model_retrain_debounce_seconds": 0, "dp_contribution_bound": 5,
}


@dataclass
class Planted:
    tenant: Tenant
    groups: list[list[str]]                       # item external ids per group
    subjects: list[str] = field(default_factory=list)        # raw ids
    group_of: dict[str, int] = field(default_factory=dict)   # raw id -> group
    keys: dict[str, str] = field(default_factory=dict)       # raw id -> subject key

    def item_pk(self, external_id: str) -> int:
        return Item.objects.for_tenant(self.tenant).get(external_id=external_id).pk


def configure(tenant: Tenant, **overrides: Any) -> Tenant:
    tenant.settings = {**tenant.settings, **FAST_SETTINGS, **overrides}
    tenant.save(update_fields=["settings"])
    return tenant


def add_items(tenant: Tenant, external_ids: list[str],
              categories: dict[str, list[str]] | None = None) -> None:
    for start in range(0, len(external_ids), 1000):
        upsert_items(tenant=tenant, items=[
            {"item": e, "title": e, "categories": (categories or {}).get(e, [])}
            for e in external_ids[start:start + 1000]])


def add_events(tenant: Tenant, subject: str, items: list[str], *, type: str = "purchase",
               start_minutes_ago: int = 10_000, value: float | None = None,
               subject_key: str | None = None) -> None:
    """One event per item, oldest first, one minute apart."""
    key = subject_key or pseudonymize(tenant, subject)
    pks = dict(Item.objects.for_tenant(tenant).filter(external_id__in=items)
               .values_list("external_id", "pk"))
    now = timezone.now()
    Event.objects.bulk_create([
        Event(tenant=tenant, event_id=uuid.uuid4().hex, subject_key=key, item_id=pks[item],
              type=type, value=value,
              occurred_at=now - timedelta(minutes=start_minutes_ago - n))
        for n, item in enumerate(items)])


def planted_dataset(tenant: Tenant, *, groups: int = 4, items_per_group: int = 10,
                    subjects_per_group: int = 12, per_subject: int = 7, seed: int = 0,
                    consent: bool = True, prefix: str = "") -> Planted:
    """Subjects each buy items of one group (plus one random item): a model that finds
    the groups recommends the unseen items of the subject's group."""
    rng = np.random.default_rng(seed)
    item_groups = [[f"{prefix}g{g}-item{i}" for i in range(items_per_group)]
                   for g in range(groups)]
    every = [i for group in item_groups for i in group]
    add_items(tenant, every, {i: [f"group-{g}"] for g, grp in enumerate(item_groups)
                              for i in grp})
    data = Planted(tenant=tenant, groups=item_groups)
    for g in range(groups):
        for s in range(subjects_per_group):
            subject = f"{prefix}subject-{g}-{s}"
            chosen = list(rng.choice(item_groups[g], size=per_subject, replace=False))
            chosen.insert(int(rng.integers(0, per_subject)), str(rng.choice(every)))
            if consent:
                data.keys[subject] = grant_consent(tenant, subject)
            else:
                data.keys[subject] = pseudonymize(tenant, subject)
            add_events(tenant, subject, list(dict.fromkeys(chosen)),
                       start_minutes_ago=10_000 - 100 * len(data.subjects))
            data.subjects.append(subject)
            data.group_of[subject] = g
    return data


def fan_dataset(tenant: Tenant, subject: str) -> tuple[Planted, str, str]:
    """Planted data plus ``subject``, whose one purchase of ``liked`` (an item of another
    group) is cited in their explained recommendations, and a trained bm25 model. Returns
    the data, the subject's key and ``liked``."""
    configure(tenant, model_algorithms=["bm25"], model_retrain_debounce_seconds=3600)
    planted = planted_dataset(tenant, groups=3, subjects_per_group=8)
    add_items(tenant, ["rare"])
    liked = planted.groups[1][0]
    key = grant_consent(tenant, subject)
    add_events(tenant, subject, [*planted.groups[0][:5], "rare", liked], subject_key=key,
               start_minutes_ago=500)
    add_events(tenant, "collector", ["rare", planted.groups[2][0]],
               subject_key=grant_consent(tenant, "collector"), start_minutes_ago=400)
    from apps.modeling.services import train_model

    train_model(tenant=tenant)
    planted.keys[subject] = key
    return planted, key, liked
