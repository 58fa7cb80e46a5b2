"""POST /api/v1/events: the pipeline, every reason code, the response contract."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.events.models import Event, EventType, Item
from apps.events.services import ingest_events
from apps.tenants.models import Scope
from apps.tenants.services import pseudonymize
from tests.factories.events import (
    EventFactory,
    ItemFactory,
    event_payload,
    grant_consent,
    withdraw_consent,
)

URL = "/api/v1/events"


def post(client, events, **headers):
    # json.dumps escapes what a JSON client may send but the test renderer cannot encode
    # (lone surrogates), so the server sees exactly such a client's bytes.
    return client.post(URL, json.dumps({"events": events}), content_type="application/json",
                       headers=headers)


def only_result(response) -> dict:
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["results"]) == 1
    return body["results"][0]


def assert_rejected(response, reason: str) -> None:
    assert only_result(response) == {"index": 0, "status": "rejected", "reason": reason}
    assert response.json()["rejected"] == 1


# --- The happy path and the response contract ------------------------------------------------


def test_an_accepted_event_is_stored_under_the_subject_key_only(api, tenant, consenting):
    payload = event_payload(consenting, item="book-7", type="rating", value=4,
                            properties={"source": "home", "position": 2})

    response = post(api, [payload])

    assert response.json() == {
        "results": [{"index": 0, "status": "accepted", "reason": None}],
        "accepted": 1, "duplicates": 0, "rejected": 0, "dropped_properties": {},
    }
    event = Event.objects.for_tenant(tenant).get()
    assert event.event_id == payload["event_id"]
    assert event.subject_key == pseudonymize(tenant, consenting)
    assert event.item.external_id == "book-7"
    assert (event.type, event.value) == ("rating", 4.0)
    assert event.properties == {"source": "home", "position": 2}


def test_results_follow_the_order_of_the_batch(api, consenting):
    events = [event_payload(consenting), {"not": "an event"}, event_payload("stranger")]

    body = post(api, events).json()

    assert body["results"] == [
        {"index": 0, "status": "accepted", "reason": None},
        {"index": 1, "status": "rejected", "reason": "invalid_event_id"},
        {"index": 2, "status": "rejected", "reason": "no_consent"},
    ]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 2)


def test_properties_outside_the_schema_are_dropped_and_counted(api, tenant, consenting):
    events = [
        event_payload(consenting, properties={"source": "home", "ip": "10.0.0.1",
                                              "user_agent": "Mozilla"}),
        event_payload(consenting, properties={"ip": "10.0.0.2", "position": "first"}),
    ]

    body = post(api, events).json()

    assert body["accepted"] == 2
    # "position" is allow-listed as an integer: a string is dropped too.
    assert body["dropped_properties"] == {"ip": 2, "user_agent": 1, "position": 1}
    stored = sorted(Event.objects.for_tenant(tenant).values_list("properties", flat=True),
                    key=len)
    assert stored == [{}, {"source": "home"}]


def test_an_unknown_item_is_created_active_and_titled_by_its_id(api, tenant, consenting):
    post(api, [event_payload(consenting, item="new-book")])

    item = Item.objects.for_tenant(tenant).get(external_id="new-book")
    assert (item.title, item.is_active, item.auto_created) == ("new-book", True, True)


def test_an_event_may_point_at_an_inactive_item(api, tenant, consenting):
    ItemFactory(tenant=tenant, external_id="old-book", is_active=False)

    assert only_result(post(api, [event_payload(consenting, item="old-book")]))["status"] == (
        "accepted")


def test_an_event_at_the_edge_of_the_future_window_is_accepted(api, consenting):
    payload = event_payload(consenting, occurred_at=timezone.now() + timedelta(minutes=4))

    assert only_result(post(api, [payload]))["status"] == "accepted"


# --- A reason code for every way an event is refused -------------------------------------------


@pytest.mark.parametrize("entry", ["an event", 7, None, ["list"], True])
def test_an_entry_that_is_not_an_object_is_invalid_event(api, entry):
    assert_rejected(post(api, [entry]), "invalid_event")


@pytest.mark.parametrize("value", [None, 12, "", "x" * 129, "nul\x00byte", "\ud800"])
def test_a_bad_event_id_is_invalid_event_id(api, consenting, value):
    payload = event_payload(consenting, event_id=value)
    if value is None:
        del payload["event_id"]
    assert_rejected(post(api, [payload]), "invalid_event_id")


@pytest.mark.parametrize("value", [None, 42, "", "   ", "s" * 513, "\ud83d"])
def test_a_bad_subject_is_invalid_subject(api, value):
    payload = event_payload(value)
    if value is None:
        del payload["subject"]
    assert_rejected(post(api, [payload]), "invalid_subject")


@pytest.mark.parametrize("value", [None, 3, "", "i" * 257, "a\x00b"])
def test_a_bad_item_is_invalid_item(api, consenting, value):
    payload = event_payload(consenting, item=value)
    if value is None:
        del payload["item"]
    assert_rejected(post(api, [payload]), "invalid_item")


@pytest.mark.parametrize("value", [None, 5, ["view"]])
def test_a_missing_or_non_string_type_is_invalid_type(api, consenting, value):
    payload = event_payload(consenting, type=value)
    if value is None:
        del payload["type"]
    assert_rejected(post(api, [payload]), "invalid_type")


def test_a_type_outside_the_schema_is_unknown_type(api, consenting):
    assert_rejected(post(api, [event_payload(consenting, type="teleport")]), "unknown_type")


def test_a_switched_off_type_is_unknown_type(api, tenant, consenting):
    EventType.objects.for_tenant(tenant).filter(code="click").update(is_active=False)

    assert_rejected(post(api, [event_payload(consenting, type="click")]), "unknown_type")


@pytest.mark.parametrize("value", [None, 1700000000, "yesterday", "2024-13-01T00:00:00Z",
                                   "2024-06-01T12:00:00", "2024-06-01", "x" * 65])
def test_a_bad_timestamp_is_invalid_occurred_at(api, consenting, value):
    payload = event_payload(consenting, occurred_at=value)
    if value is None:
        del payload["occurred_at"]
    assert_rejected(post(api, [payload]), "invalid_occurred_at")


@pytest.mark.parametrize(("event_type", "value"), [
    ("view", "5"), ("view", True), ("view", 10**30), ("view", {"v": 1}),
    ("rating", None), ("rating", -1),
])
def test_a_bad_value_is_invalid_value(api, consenting, event_type, value):
    payload = event_payload(consenting, type=event_type, value=value)
    if value is None:
        del payload["value"]
    assert_rejected(post(api, [payload]), "invalid_value")


@pytest.mark.parametrize(("event_type", "value"), [
    ("rating", 1e308), ("rating", 10.5), ("view", 1e7), ("view", -1e7), ("purchase", 2e6),
])
def test_a_value_outside_its_types_range_is_value_out_of_range(api, tenant, consenting,
                                                               event_type, value):
    assert_rejected(post(api, [event_payload(consenting, type=event_type, value=value)]),
                    "value_out_of_range")
    assert not Event.objects.for_tenant(tenant).exists()


def test_a_1e308_rating_is_rejected_while_the_rest_of_its_batch_is_stored(api, tenant,
                                                                           consenting):
    batch = [event_payload(consenting, type="rating", value=4),
             event_payload(consenting, type="rating", value=1e308),
             event_payload(consenting, type="rating", value=10)]

    body = post(api, batch).json()

    assert [(r["status"], r["reason"]) for r in body["results"]] == [
        ("accepted", None), ("rejected", "value_out_of_range"), ("accepted", None)]
    assert sorted(Event.objects.for_tenant(tenant).values_list("value", flat=True)) == [
        4.0, 10.0]


def test_a_tenants_declared_range_applies_to_the_next_batch(api, tenant, consenting):
    post(api, [event_payload(consenting, type="rating", value=7)])  # the schema is read
    for code, low, high in (("rating", 1, 5), ("view", 0, None)):
        event_type = EventType.objects.for_tenant(tenant).get(code=code)
        event_type.min_value, event_type.max_value = low, high
        event_type.save()  # as the admin does: the configuration revision moves

    results = post(api, [event_payload(consenting, type="rating", value=5),
                         event_payload(consenting, type="rating", value=6),
                         event_payload(consenting, type="rating", value=0.5),
                         event_payload(consenting, type="view", value=-1),
                         event_payload(consenting, type="view", value=3)]).json()["results"]

    assert [r["reason"] for r in results] == [
        None, "value_out_of_range", "value_out_of_range", "value_out_of_range", None]


def test_a_types_range_and_weight_are_bounded_in_the_database(tenant):
    from django.db import IntegrityError, transaction

    rating = EventType.objects.for_tenant(tenant).filter(code="rating")
    for change in ({"min_value": 6, "max_value": 5}, {"max_value": 1e7},
                   {"min_value": float("-inf")}, {"weight": 1e308}):
        with pytest.raises(IntegrityError), transaction.atomic():
            rating.update(**change)


@pytest.mark.parametrize("value", [["source"], "source=home", 3,
                                   {f"p{n}": n for n in range(65)}])
def test_bad_properties_are_invalid_properties(api, consenting, value):
    assert_rejected(post(api, [event_payload(consenting, properties=value)]),
                    "invalid_properties")


@pytest.mark.parametrize("age", [timedelta(days=366), timedelta(days=365 * 2000)])
def test_an_event_older_than_the_retention_window_is_too_old(api, consenting, age):
    payload = event_payload(consenting, occurred_at=timezone.now() - age)

    assert_rejected(post(api, [payload]), "too_old")


def test_the_window_follows_the_tenants_events_retention_policy(api, tenant, consenting):
    from apps.retention.services import set_retention_policy

    set_retention_policy(tenant=tenant, category="events", days=30)
    old = event_payload(consenting, occurred_at=timezone.now() - timedelta(days=31))
    recent = event_payload(consenting, occurred_at=timezone.now() - timedelta(days=29))

    assert [r["reason"] for r in post(api, [old, recent]).json()["results"]] == [
        "too_old", None]


def test_an_event_more_than_five_minutes_ahead_is_in_future(api, consenting):
    payload = event_payload(consenting, occurred_at=timezone.now() + timedelta(minutes=6))

    assert_rejected(post(api, [payload]), "in_future")


def test_a_subject_who_never_consented_is_no_consent(api, tenant):
    assert_rejected(post(api, [event_payload("stranger")]), "no_consent")
    assert not Event.objects.for_tenant(tenant).exists()


def test_withdrawn_consent_rejects_the_next_batch(api, tenant, consenting):
    assert only_result(post(api, [event_payload(consenting)]))["status"] == "accepted"

    withdraw_consent(tenant, consenting)

    assert_rejected(post(api, [event_payload(consenting)]), "no_consent")
    assert Event.objects.for_tenant(tenant).count() == 1


def test_a_restricted_subject_is_restricted(api, tenant, consenting):
    from apps.consent.services import set_restriction

    set_restriction(tenant=tenant, subject_key=pseudonymize(tenant, consenting),
                    restricted=True)

    assert_rejected(post(api, [event_payload(consenting)]), "restricted")


def test_a_subject_who_objected_is_no_consent(api, tenant, consenting):
    from apps.consent.services import record_objection

    record_objection(tenant=tenant, subject_key=pseudonymize(tenant, consenting))

    assert_rejected(post(api, [event_payload(consenting)]), "no_consent")


def test_a_purpose_allowed_below_level_full_is_level(api, tenant):
    """Analytics is allowed by default (legitimate interest), but nothing is stored for a
    subject whose personalization level is not "full"."""
    EventType.objects.create(tenant=tenant, code="impression", purpose="analytics")

    assert_rejected(post(api, [event_payload("stranger", type="impression")]), "level")


def test_a_type_mapped_to_another_purpose_is_gated_by_that_purpose(api, tenant, consenting):
    EventType.objects.create(tenant=tenant, code="ad_click", purpose="cross_context_ads")

    assert_rejected(post(api, [event_payload(consenting, type="ad_click")]), "no_consent")


def test_an_unknown_item_is_rejected_when_the_tenant_says_so(api, tenant, consenting):
    tenant.settings = {"unknown_items": "reject"}
    tenant.save()
    ItemFactory(tenant=tenant, external_id="known")

    body = post(api, [event_payload(consenting, item="unknown"),
                      event_payload(consenting, item="known")]).json()

    assert [r["reason"] for r in body["results"]] == ["unknown_item", None]
    assert not Item.objects.for_tenant(tenant).filter(external_id="unknown").exists()


def test_a_resent_event_is_a_duplicate_and_stored_once(api, tenant, consenting):
    payload = event_payload(consenting)
    post(api, [payload])

    body = post(api, [payload]).json()

    assert body["results"] == [{"index": 0, "status": "duplicate", "reason": "duplicate"}]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 1, 0)
    assert Event.objects.for_tenant(tenant).count() == 1


def test_an_event_id_repeated_in_one_batch_is_stored_once(api, tenant, consenting):
    first = event_payload(consenting)

    body = post(api, [first, dict(first)]).json()

    assert body["results"][1] == {"index": 1, "status": "duplicate",
                                  "reason": "duplicate_in_batch"}
    assert Event.objects.for_tenant(tenant).count() == 1


# --- The envelope ------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    [event_payload("a")], {"events": "nope"}, {"events": {"0": {}}}, {"event": []}, {},
    {"events": [event_payload("a")] * 1001}, "events",
])
def test_a_body_that_is_not_an_envelope_is_400_and_stores_nothing(api, tenant, consenting,
                                                                   body):
    response = api.post(URL, json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not Event.objects.for_tenant(tenant).exists()
    assert not Item.objects.for_tenant(tenant).exists()


def test_a_body_that_is_not_json_is_400(api):
    response = api.post(URL, b"{events: [", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_an_empty_batch_is_answered_with_zero_counts(api):
    assert post(api, []).json() == {"results": [], "accepted": 0, "duplicates": 0,
                                    "rejected": 0, "dropped_properties": {}}


def test_ingestion_needs_the_events_write_scope(tenant, make_client, consenting):
    client = make_client(tenant, scopes=[Scope.CATALOG_WRITE])

    response = post(client, [event_payload(consenting)])

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"


def test_ingestion_needs_a_key(client):
    assert client.post(URL, {"events": []}, content_type="application/json").status_code == 401


# --- GPC ------------------------------------------------------------------------------------


def test_sec_gpc_opts_the_batchs_subjects_out_of_sale_and_sharing(api, tenant, consenting):
    from apps.consent.selectors import get_subject_consent

    body = post(api, [event_payload(consenting), event_payload("stranger")],
                **{"Sec-GPC": "1"}).json()

    assert body["accepted"] == 1  # personalization is not sale or sharing
    for raw in (consenting, "stranger"):
        detail = get_subject_consent(tenant=tenant, subject_key=pseudonymize(tenant, raw))
        assert detail.gpc is True


def test_without_sec_gpc_nothing_is_opted_out(api, tenant, consenting):
    from apps.consent.selectors import get_subject_consent

    post(api, [event_payload(consenting)], **{"Sec-GPC": "0"})

    detail = get_subject_consent(tenant=tenant, subject_key=pseudonymize(tenant, consenting))
    assert detail.gpc is False


def test_sec_gpc_rejects_events_of_sale_or_sharing_types(api, tenant, consenting):
    from apps.consent.services import record_consents

    EventType.objects.create(tenant=tenant, code="ad_click", purpose="cross_context_ads")
    record_consents(tenant=tenant, subject_key=pseudonymize(tenant, consenting),
                    decisions={"cross_context_ads": True})
    assert only_result(post(api, [event_payload(consenting, type="ad_click")]))[
        "status"] == "accepted"

    response = post(api, [event_payload(consenting, type="ad_click")], **{"Sec-GPC": "1"})

    assert_rejected(response, "no_consent")


# --- Cost and isolation ---------------------------------------------------------------------


def _queries_for(tenant, count: int, tag: str) -> int:
    events = []
    for n in range(count):
        subject = f"{tag}-subject-{n}"
        grant_consent(tenant, subject)
        events.append(event_payload(subject, item=f"{tag}-item-{n}",
                                    properties={"source": "x", "junk": 1}))
    events.append(event_payload("no-consent"))
    with CaptureQueriesContext(connection) as queries:
        report = ingest_events(tenant=tenant, events=events)
    assert report.accepted == count
    return len(queries)


def test_a_batch_costs_the_same_number_of_queries_whatever_its_size(tenant):
    first = _queries_for(tenant, 1, "first")  # also memoizes the tenant's configuration
    small = _queries_for(tenant, 2, "small")
    large = _queries_for(tenant, 150, "large")

    assert small == large
    # consent 2, items 2 (unknown ones created), insert 1, savepoint 2, and the durable
    # history-cap job 2 (its row, its enqueue mark)
    assert large <= 10  # 10th: the per-day tally of outcomes (the console's events chart)
    # The schema, the purposes, the retention period and the item memo: read once per
    # configuration revision (each with the revision it is labelled with), not per batch.
    assert first == large + 7


def test_the_same_event_id_in_two_tenants_is_two_events(api, other_api, tenant, other_tenant,
                                                        consenting):
    grant_consent(other_tenant, consenting)
    payload = event_payload(consenting, event_id="shared-id", item="shared-item")

    assert only_result(post(api, [payload]))["status"] == "accepted"
    assert only_result(post(other_api, [payload]))["status"] == "accepted"

    mine = Event.objects.for_tenant(tenant).get()
    theirs = Event.objects.for_tenant(other_tenant).get()
    assert mine.subject_key != theirs.subject_key
    assert mine.item.tenant_id == tenant.pk
    assert theirs.item.tenant_id == other_tenant.pk


def test_another_tenants_consent_and_events_do_not_count(api, tenant, other_tenant):
    grant_consent(other_tenant, "bob")
    EventFactory(tenant=other_tenant, event_id="taken")

    body = post(api, [event_payload("bob", event_id="taken")]).json()

    assert body["results"][0]["reason"] == "no_consent"
    assert Event.objects.for_tenant(other_tenant).count() == 1


def test_retention_days_follows_the_policy(tenant, other_tenant):
    from apps.events.selectors import retention_days
    from apps.retention.services import set_retention_policy

    set_retention_policy(tenant=tenant, category="events", days=30)

    assert retention_days(tenant) == 30
    assert retention_days(other_tenant) == 365


def test_the_event_retention_days_setting_can_only_shorten_the_policy(tenant):
    from apps.events.selectors import retention_days

    tenant.settings = {"event_retention_days": 30}
    assert retention_days(tenant) == 30
    tenant.settings = {"event_retention_days": 400}
    assert retention_days(tenant) == 365
