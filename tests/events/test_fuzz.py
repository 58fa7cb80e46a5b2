"""Fuzzing the ingestion endpoint: malformed events and bodies never cause a 500 and never
leave an invalid event (or part of a refused batch) stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.events.models import VALUE_LIMIT, Event, EventProperty
from apps.events.selectors import kind_accepts
from tests.factories.events import grant_consent

URL = "/api/v1/events"
SUBJECTS = ["alice", "bob", "carol"]  # alice and bob consent (fixture below)
FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Any code point, lone surrogates and NUL included: JSON can carry them all.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | any_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
stamps = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),  # noqa: DTZ001
                 timezones=st.just(UTC)).map(datetime.isoformat),
    st.just((datetime.now(UTC) - timedelta(hours=1)).isoformat()),
    any_text,
)
properties = st.dictionaries(
    st.sampled_from(["source", "position", "price", "quantity", "ip", "user_agent"])
    | any_text,
    json_scalars, max_size=6,
)
plausible_event = st.fixed_dictionaries(
    {
        "event_id": any_text | st.uuids().map(str),
        "subject": st.sampled_from(SUBJECTS) | any_text,
        "item": st.sampled_from(["book-1", "book-2"]) | any_text,
        "type": st.sampled_from(["view", "click", "rating", "purchase", "teleport"]),
        "occurred_at": stamps,
    },
    optional={"value": json_scalars, "properties": properties | json_values,
              "extra": json_values},
)
events = st.lists(plausible_event | json_values, max_size=12)
bodies = st.one_of(
    st.fixed_dictionaries({"events": events}),
    st.fixed_dictionaries({"events": json_values}),
    json_values,
)


def _post(api, raw: bytes):
    return api.post(URL, raw, content_type="application/json")


def _assert_every_stored_event_is_valid(tenant) -> None:
    allowed = dict(EventProperty.objects.for_tenant(tenant).values_list("name", "kind"))
    for event in Event.objects.for_tenant(tenant).select_related("item"):
        assert event.type in {"view", "click", "rating", "purchase"}
        assert 0 < len(event.event_id) <= 128
        assert len(event.subject_key) == 64
        assert event.value is None or abs(event.value) <= VALUE_LIMIT
        if event.type == "rating":
            assert event.value is not None
            assert 0 <= event.value <= 10
        for name, value in event.properties.items():
            assert kind_accepts(allowed[name], value)


@FUZZ
@given(body=bodies)
def test_any_json_body_gets_a_200_or_400_and_only_valid_events_are_stored(
        api, tenant, body):
    grant_consent(tenant, "alice")
    grant_consent(tenant, "bob")
    before = Event.objects.for_tenant(tenant).count()

    response = _post(api, json.dumps(body).encode())

    assert response.status_code in (200, 400), response.content
    stored = Event.objects.for_tenant(tenant).count() - before
    if response.status_code == 400:
        assert stored == 0
        assert set(response.json()["error"]) == {"code", "message", "details"}
    else:
        answer = response.json()
        assert len(answer["results"]) == len(body["events"])
        assert answer["accepted"] == stored
        assert answer["accepted"] + answer["duplicates"] + answer["rejected"] == len(
            body["events"])
        for result in answer["results"]:
            assert (result["status"] == "accepted") == (result["reason"] is None)
    _assert_every_stored_event_is_valid(tenant)


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_get_a_4xx_or_a_report_never_a_500(api, tenant, raw):
    before = Event.objects.for_tenant(tenant).count()

    response = _post(api, raw)

    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert Event.objects.for_tenant(tenant).count() == before
