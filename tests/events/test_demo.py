from __future__ import annotations

import io

from apps.consent.selectors import can_use_many
from apps.events.demo import DEMO_ITEMS, seed_demo_events
from apps.events.models import Event, Item


def test_the_demo_seeder_is_idempotent(tenant):
    # How fast it is belongs to a benchmark, not here: the suite runs on loaded machines.
    seed_demo_events(tenant, io.StringIO())

    events = Event.objects.for_tenant(tenant)
    assert Item.objects.for_tenant(tenant).count() == DEMO_ITEMS
    assert events.count() > 1000
    keys = set(events.values_list("subject_key", flat=True))
    assert can_use_many(tenant=tenant, subject_keys=keys, purpose="personalization") == keys

    out = io.StringIO()
    seed_demo_events(tenant, out)
    assert events.count() == Event.objects.for_tenant(tenant).count()
    assert "already" in out.getvalue()


def test_the_demo_seeds_only_its_own_tenant(tenant, other_tenant):
    seed_demo_events(tenant, io.StringIO())

    assert not Event.objects.for_tenant(other_tenant).exists()
    assert not Item.objects.for_tenant(other_tenant).exists()
