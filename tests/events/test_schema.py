"""The per-tenant event schema: defaults, weights, admin editing, auditing."""

from __future__ import annotations

from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from apps.events.models import EventProperty, EventType, ItemAttribute
from apps.events.selectors import get_event_schema
from apps.events.services import (
    DEFAULT_EVENT_PROPERTIES,
    DEFAULT_ITEM_ATTRIBUTES,
    ingest_events,
    provision_event_schema,
)
from tests.factories.events import event_payload, grant_consent
from tests.factories.tenants import MembershipFactory


def test_a_new_tenant_gets_the_default_types_and_weights(tenant):
    schema = get_event_schema(tenant=tenant)

    assert {code: spec.weight for code, spec in schema.types.items()
            if not spec.weight_from_value} == {
        "view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
    assert schema.types["rating"].weight_from_value is True
    assert {spec.purpose for spec in schema.types.values()} == {"personalization"}
    assert schema.properties == DEFAULT_EVENT_PROPERTIES
    assert dict(ItemAttribute.objects.for_tenant(tenant).values_list("name", "kind")) == (
        DEFAULT_ITEM_ATTRIBUTES)


def test_weight_of_uses_the_value_for_ratings(tenant):
    schema = get_event_schema(tenant=tenant)

    assert schema.weight_of("purchase", None) == 8.0
    assert schema.weight_of("rating", 4.5) == 4.5
    assert schema.weight_of("rating", -2) == 0.0
    assert schema.weight_of("teleport", 3) == 0.0


def test_provisioning_again_keeps_the_tenants_edits(tenant):
    EventType.objects.for_tenant(tenant).filter(code="view").update(weight=0.5)
    EventProperty.objects.for_tenant(tenant).filter(name="price").delete()

    provision_event_schema(tenant)

    assert EventType.objects.for_tenant(tenant).get(code="view").weight == 0.5
    assert EventType.objects.for_tenant(tenant).count() == 5
    assert EventProperty.objects.for_tenant(tenant).filter(name="price").exists()


def test_a_property_added_by_one_tenant_is_dropped_for_another(tenant, other_tenant):
    EventProperty.objects.create(tenant=tenant, name="shelf", kind="string")
    grant_consent(tenant, "alice")
    grant_consent(other_tenant, "alice")
    event = {"properties": {"shelf": "top"}}

    mine = ingest_events(tenant=tenant, events=[event_payload("alice", **event)])
    theirs = ingest_events(tenant=other_tenant, events=[event_payload("alice", **event)])

    assert mine.dropped_properties == {}
    assert theirs.dropped_properties == {"shelf": 1}


def test_schema_edits_are_captured_by_auditlog(tenant):
    view = EventType.objects.for_tenant(tenant).get(code="view")

    view.weight = 3.0
    view.save()

    entry = LogEntry.objects.get(content_type=ContentType.objects.get_for_model(EventType),
                                 object_pk=str(view.pk), action=LogEntry.Action.UPDATE)
    assert entry.changes_dict["weight"] == ["1.0", "3.0"]


def test_a_member_edits_only_their_tenants_schema_in_the_admin(client, tenant, other_tenant):
    member = MembershipFactory(tenant=tenant).user
    client.force_login(member)
    mine = EventType.objects.for_tenant(tenant).get(code="view")
    theirs = EventType.objects.for_tenant(other_tenant).get(code="view")

    listing = client.get("/admin/events/eventtype/")
    assert listing.status_code == 200
    assert {obj.pk for obj in listing.context["cl"].queryset} == set(
        EventType.objects.for_tenant(tenant).values_list("pk", flat=True))

    response = client.post(f"/admin/events/eventtype/{mine.pk}/change/", {
        "code": "view", "weight": "1.5", "purpose": "personalization", "is_active": "on"})
    assert response.status_code == 302
    mine.refresh_from_db()
    assert mine.weight == 1.5
    assert client.get(f"/admin/events/eventtype/{theirs.pk}/change/").status_code in (302, 404)


def test_the_event_admin_is_read_only(client, tenant):
    member = MembershipFactory(tenant=tenant).user
    client.force_login(member)

    assert client.get("/admin/events/event/").status_code == 200
    assert client.get("/admin/events/event/add/").status_code == 403
