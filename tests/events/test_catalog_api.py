"""PUT /api/v1/items and DELETE /api/v1/items/{item}."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.events.models import Item
from apps.tenants.models import Scope
from tests.factories.events import ItemFactory

URL = "/api/v1/items"


def put(client, items):
    return client.put(URL, {"items": items}, format="json")


def test_a_batch_creates_items_and_reports_dropped_attributes(api, tenant):
    response = put(api, [
        {"item": "b1", "title": "Dune", "categories": ["sf", "sf", "classic"],
         "attributes": {"author": "Herbert", "year": 1965, "isbn": "0441013597",
                        "price": "cheap"}},
        {"item": "b2"},
    ])

    assert response.status_code == 200
    assert response.json() == {"received": 2, "created": 2, "updated": 0,
                               "dropped_attributes": {"isbn": 1, "price": 1}}
    dune = Item.objects.for_tenant(tenant).get(external_id="b1")
    assert (dune.title, dune.categories, dune.is_active) == ("Dune", ["sf", "classic"], True)
    assert dune.attributes == {"author": "Herbert", "year": 1965}
    assert Item.objects.for_tenant(tenant).get(external_id="b2").title == "b2"


def test_a_second_batch_replaces_the_items_it_names(api, tenant):
    put(api, [{"item": "b1", "title": "Old", "attributes": {"year": 1}}, {"item": "b2"}])

    response = put(api, [{"item": "b1", "title": "New", "active": False}, {"item": "b3"}])

    assert response.json() == {"received": 2, "created": 1, "updated": 1,
                               "dropped_attributes": {}}
    item = Item.objects.for_tenant(tenant).get(external_id="b1")
    assert (item.title, item.attributes, item.is_active) == ("New", {}, False)
    assert Item.objects.for_tenant(tenant).count() == 3


def test_the_feed_takes_over_an_item_created_by_ingestion(api, tenant):
    ItemFactory(tenant=tenant, external_id="b1", title="b1", auto_created=True)

    put(api, [{"item": "b1", "title": "Real title"}])

    item = Item.objects.for_tenant(tenant).get(external_id="b1")
    assert (item.title, item.auto_created) == ("Real title", False)


def test_an_upsert_leaves_one_audit_entry_with_counts(api, tenant):
    put(api, [{"item": "b1"}, {"item": "b2"}])

    entry = AuditEvent.objects.for_tenant(tenant).get(action="catalog.items_upserted")
    assert entry.details == {"created": 2, "updated": 0}
    assert entry.actor_type == "api_key"


def test_a_batch_naming_an_item_twice_is_409_and_writes_nothing(api, tenant):
    response = put(api, [{"item": "b1"}, {"item": "b1"}])

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate_item"
    assert not Item.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(("items", "code"), [
    ([{"title": "no id"}], "invalid"),
    ([{"item": 0}], "invalid"),
    ([{"item": "b1", "active": "yes"}], "invalid"),
    ([{"item": "x" * 257}], "invalid"),
    ([{"item": "b1", "categories": "sf"}], "invalid"),
    ([{"item": "b1", "attributes": ["year"]}], "invalid"),
    ([{"item": f"b{n}"} for n in range(1001)], "invalid"),
])
def test_an_invalid_batch_is_400_and_writes_nothing(api, tenant, items, code):
    response = put(api, items)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not Item.objects.for_tenant(tenant).exists()


def test_attribute_strings_that_cannot_be_stored_are_dropped(api, tenant):
    response = put(api, [{"item": "b1", "attributes": {"author": "a\x00b"}}])

    assert response.json()["dropped_attributes"] == {"author": 1}


def test_delete_deactivates_and_is_idempotent(api, tenant):
    ItemFactory(tenant=tenant, external_id="b1")

    assert api.delete(f"{URL}/b1").status_code == 204
    assert api.delete(f"{URL}/b1").status_code == 204

    assert Item.objects.for_tenant(tenant).get(external_id="b1").is_active is False
    assert AuditEvent.objects.for_tenant(tenant).filter(
        action="catalog.item_deactivated").count() == 1


def test_an_item_id_with_a_slash_can_be_deactivated(api, tenant):
    ItemFactory(tenant=tenant, external_id="shelf/b1")

    assert api.delete(f"{URL}/shelf%2Fb1").status_code == 204
    assert Item.objects.for_tenant(tenant).get(external_id="shelf/b1").is_active is False


def test_deleting_an_unknown_item_is_404(api):
    response = api.delete(f"{URL}/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_another_tenants_item_is_a_404_and_stays_active(api, other_tenant):
    ItemFactory(tenant=other_tenant, external_id="b1")

    assert api.delete(f"{URL}/b1").status_code == 404
    assert Item.objects.for_tenant(other_tenant).get(external_id="b1").is_active is True


def test_the_same_item_id_in_two_tenants_is_two_items(api, other_api, tenant, other_tenant):
    put(api, [{"item": "b1", "title": "Mine"}])
    put(other_api, [{"item": "b1", "title": "Theirs"}])

    assert Item.objects.for_tenant(tenant).get(external_id="b1").title == "Mine"
    assert Item.objects.for_tenant(other_tenant).get(external_id="b1").title == "Theirs"


@pytest.mark.parametrize("method", ["put", "delete"])
def test_the_catalog_needs_the_catalog_write_scope(tenant, make_client, method):
    client = make_client(tenant, scopes=[Scope.EVENTS_WRITE])
    ItemFactory(tenant=tenant, external_id="b1")

    response = (put(client, [{"item": "b1"}]) if method == "put"
                else client.delete(f"{URL}/b1"))

    assert response.status_code == 403
