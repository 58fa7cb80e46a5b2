"""Demo data for ``make run``: a small bookshop catalog, consent and synthetic events."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TextIO

from django.utils import timezone

from apps.events.models import Event
from apps.events.services import ingest_events, upsert_items
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize_many

DEMO_ITEMS = 150
DEMO_SUBJECTS = 300
CONSENT_SHARE = 0.9
_GENRES = ["fantasy", "mystery", "romance", "science-fiction", "history", "poetry", "travel",
           "cooking", "biography", "classics"]
_WORDS = ["Silent", "Hidden", "Last", "Golden", "Winter", "Paper", "Glass", "Northern",
          "Little", "Distant", "Burning", "Quiet"]
_NOUNS = ["Garden", "River", "Archive", "Harbor", "Lantern", "Orchard", "Atlas", "Kingdom",
          "Letters", "Station", "Tide", "Library"]
# (type, share): mostly views, some clicks and carts, few purchases, a few ratings.
_TYPES = [("view", 0.55), ("click", 0.2), ("add_to_cart", 0.1), ("purchase", 0.05),
          ("rating", 0.1)]


def demo_subject_id(n: int) -> str:
    return f"demo-user-{n:04d}"


def seed_demo_events(tenant: Tenant, out: TextIO) -> None:
    """Seed ``tenant`` once: items, consent for 90% of 300 subjects, about 4,500 events.
    Idempotent: does nothing when the tenant already has events."""
    from apps.consent.services import record_consents

    if Event.objects.for_tenant(tenant).exists():
        out.write("events: demo data already present\n")
        return
    rng = random.Random(20240601)  # noqa: S311 - synthetic demo data, not security
    items = []
    for n in range(1, DEMO_ITEMS + 1):
        genre = _GENRES[n % len(_GENRES)]
        items.append({
            "item": f"book-{n}",
            "title": f"The {rng.choice(_WORDS)} {rng.choice(_NOUNS)}",
            "categories": [genre],
            "attributes": {"year": rng.randint(1850, 2024), "language": "en"},
            "active": True,
        })
    upsert_items(tenant=tenant, items=items)

    raw_ids = [demo_subject_id(n) for n in range(1, DEMO_SUBJECTS + 1)]
    keys = pseudonymize_many(tenant, raw_ids)
    consenting = 0
    for raw_id in raw_ids:
        if rng.random() < CONSENT_SHARE:
            record_consents(tenant=tenant, subject_key=keys[raw_id],
                            decisions={"personalization": True}, level="full",
                            source="import")
            consenting += 1
    del keys

    now = timezone.now()
    types, weights = zip(*_TYPES, strict=True)
    events = []
    for n, raw_id in enumerate(raw_ids):
        # Each subject leans to two genres, so the demo model has something to learn.
        liked = {n % len(_GENRES), (n * 7 + 3) % len(_GENRES)}
        pool = [i for i in range(1, DEMO_ITEMS + 1) if i % len(_GENRES) in liked]
        for k in range(rng.randint(5, 25)):
            event_type = rng.choices(types, weights)[0]
            events.append({
                "event_id": f"demo-{n}-{k}",
                "subject": raw_id,
                "item": f"book-{rng.choice(pool)}",
                "type": event_type,
                "value": float(rng.randint(3, 5)) if event_type == "rating" else None,
                "occurred_at": (now - timedelta(minutes=rng.randint(10, 60 * 24 * 30))
                                ).isoformat(),
                "properties": {"source": rng.choice(["home", "search", "similar"]),
                               "position": rng.randint(1, 10)},
            })
    accepted = 0
    for start in range(0, len(events), 1000):
        accepted += ingest_events(tenant=tenant, events=events[start:start + 1000]).accepted
    out.write(f"events: {DEMO_ITEMS} items, {consenting}/{DEMO_SUBJECTS} subjects consenting, "
              f"{accepted} events stored\n")
