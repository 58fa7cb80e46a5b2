"""Cross-tenant probes for the events routes (see tests/isolation.py)."""

from __future__ import annotations

from apps.events.models import Event, Item
from apps.tenants.models import Tenant
from tests.factories.events import EventFactory, ItemFactory, event_payload
from tests.isolation import IsolationCase, Probe, isolation_case


@isolation_case("event-ingest:post")
def event_ingest(owner: Tenant) -> IsolationCase:
    """Sending an event with the owner's event id and item id reveals nothing: the answer is
    the one for ids nobody has, and the owner's event and item are untouched."""
    item = ItemFactory(tenant=owner, external_id="owner-secret-item", title="Owner Title")
    event = EventFactory(tenant=owner, item=item, event_id="owner-secret-event")
    before = Event.objects.for_tenant(owner).count()

    def probe(event_id: str, item_id: str) -> Probe:
        return Probe(method="post", body={"events": [event_payload(
            "someone", event_id=event_id, item=item_id)]})

    return IsolationCase(
        target=probe(event.event_id, item.external_id),
        missing=probe("nobody-has-this-event", "nobody-has-this-item"),
        markers=("Owner Title",),
        scrub=("owner-secret-event", "owner-secret-item", "nobody-has-this-event",
               "nobody-has-this-item"),
        intact=lambda: (Event.objects.for_tenant(owner).count() == before
                        and Item.objects.for_tenant(owner).filter(
                            pk=item.pk, title="Owner Title", is_active=True).exists()),
    )


@isolation_case("item-upsert:put")
def item_upsert(owner: Tenant) -> IsolationCase:
    item = ItemFactory(tenant=owner, external_id="owner-item", title="Owner Title")
    return IsolationCase(
        target=Probe(method="put", body={"items": [{"item": "owner-item", "title": "Mine"}]}),
        missing=Probe(method="put", body={"items": [{"item": "fresh-item", "title": "Mine"}]}),
        markers=("Owner Title",),
        intact=lambda: Item.objects.for_tenant(owner).filter(
            pk=item.pk, title="Owner Title", is_active=True).exists(),
    )


@isolation_case("item-deactivate:delete")
def item_deactivate(owner: Tenant) -> IsolationCase:
    item = ItemFactory(tenant=owner, external_id="owner-item", title="Owner Title")
    return IsolationCase(
        target=Probe(method="delete", kwargs={"item": "owner-item"}),
        missing=Probe(method="delete", kwargs={"item": "no-such-item"}),
        markers=("Owner Title",),
        intact=lambda: Item.objects.for_tenant(owner).filter(pk=item.pk, is_active=True
                                                             ).exists(),
    )
