"""discreet_client: batching, retries with the same event ids, Sec-GPC, errors.

Most tests run the client against the real application in-process (httpx's WSGI
transport), in the test's database transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections

from apps.events.models import Event, Item
from discreet_client import ApiError, DiscreetClient
from discreet_client import Event as ClientEvent
from tests.factories.events import grant_consent
from tests.factories.tenants import make_api_key


class FlakyTransport(httpx.BaseTransport):
    """Delivers each request to the app, then loses the first ``lose`` answers: the server
    did the work, the client saw a timeout (the classic duplicate-maker)."""

    def __init__(self, inner: httpx.BaseTransport, lose: int) -> None:
        self.inner = inner
        self.lose = lose
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.read())
        response = self.inner.handle_request(request)
        if self.lose:
            self.lose -= 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


@pytest.fixture
def app_transport(db) -> Iterator[httpx.BaseTransport]:
    """The WSGI app on the test's connection. Like Django's test client, keep the request
    signals from closing that connection (it is inside the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield httpx.WSGITransport(app=get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def raw_key(tenant) -> str:
    return make_api_key(tenant)[1]


def make_client(raw_key: str, transport: httpx.BaseTransport, **kwargs) -> DiscreetClient:
    return DiscreetClient("http://testserver", raw_key, transport=transport,
                          sleep=lambda _: None, **kwargs)


def test_events_are_sent_in_batches_and_results_indexed_over_all(tenant, raw_key,
                                                                  app_transport):
    grant_consent(tenant, "alice")
    events = [ClientEvent(subject="alice" if n % 2 == 0 else "bob", item=f"book-{n}",
                          type="view", properties={"source": "home", "ip": "x"})
              for n in range(7)]

    with make_client(raw_key, app_transport, batch_size=3) as client:
        summary = client.send_events(events)

    assert summary.batches == 3
    assert (summary.accepted, summary.rejected) == (4, 3)
    assert [r.index for r in summary.results] == list(range(7))
    assert summary.rejected_by_reason() == {"no_consent": 3}
    assert summary.dropped_properties == {"ip": 4}
    assert Event.objects.for_tenant(tenant).count() == 4


def test_the_client_needs_no_orjson(tenant, raw_key, app_transport, monkeypatch):
    """orjson is optional on a client site: the standard library encodes and decodes."""
    import discreet_client.client as client_module

    monkeypatch.setattr(client_module, "orjson", None)
    grant_consent(tenant, "alice")
    with make_client(raw_key, app_transport) as client:
        summary = client.send_events([ClientEvent(subject="alice", item="b", type="view",
                                                  properties={"n": 2**70})])
        with pytest.raises(ApiError) as error:
            client.request("POST", "events", body={"events": "not a list"})

    assert summary.accepted == 1
    assert summary.dropped_properties == {"n": 1}  # not a 64-bit integer
    assert (error.value.status, error.value.code) == (400, "invalid")


def test_a_retry_after_a_lost_answer_stores_each_event_exactly_once(tenant, raw_key,
                                                                    app_transport):
    grant_consent(tenant, "alice")
    flaky = FlakyTransport(app_transport, lose=1)
    events = [ClientEvent(subject="alice", item="book-1", type="click") for _ in range(5)]

    with make_client(raw_key, flaky) as client:
        summary = client.send_events(events)

    assert summary.retries == 1
    assert len(flaky.bodies) == 2
    assert flaky.bodies[0] == flaky.bodies[1]  # same event ids, byte for byte
    assert summary.duplicates == 5  # the first attempt stored them
    assert Event.objects.for_tenant(tenant).count() == 5
    assert set(Event.objects.for_tenant(tenant).values_list("event_id", flat=True)) == {
        e.event_id for e in events}


def test_gpc_sends_the_sec_gpc_header(tenant, raw_key, app_transport):
    from apps.consent.selectors import get_subject_consent
    from apps.tenants.services import pseudonymize

    seen: list[str | None] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Sec-GPC"))
        return app_transport.handle_request(request)

    with make_client(raw_key, httpx.MockTransport(spy), gpc=True) as client:
        client.send_events([ClientEvent(subject="carol", item="b", type="view")])
        client.send_events([ClientEvent(subject="dave", item="b", type="view")], gpc=False)

    assert seen == ["1", None]
    assert get_subject_consent(tenant=tenant, subject_key=pseudonymize(tenant, "carol")).gpc
    assert not get_subject_consent(tenant=tenant,
                                   subject_key=pseudonymize(tenant, "dave")).gpc


def test_the_catalog_calls(tenant, raw_key, app_transport):
    with make_client(raw_key, app_transport) as client:
        totals = client.upsert_items([{"item": "shelf/b1", "title": "One"},
                                      {"item": "b2", "attributes": {"isbn": "x"}}])
        client.deactivate_item("shelf/b1")

    assert totals == {"received": 2, "created": 2, "updated": 0,
                      "dropped_attributes": {"isbn": 1}}
    assert Item.objects.for_tenant(tenant).get(external_id="shelf/b1").is_active is False


def test_an_error_answer_raises_api_error_with_the_code(app_transport):
    with make_client("dsk_nope_nope", app_transport) as client, pytest.raises(ApiError) as err:
        client.send_events([ClientEvent(subject="a", item="b", type="view")])

    assert err.value.status == 401
    assert err.value.code == "authentication_failed"


def test_429_and_5xx_are_retried_then_given_up():
    calls: list[int] = []

    def always_busy(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"error": {"code": "busy", "message": "later"}},
                              headers={"Retry-After": "1"})

    client = make_client("k", httpx.MockTransport(always_busy), max_retries=2)
    with pytest.raises(ApiError) as err:
        client.send_batch([{"event_id": "e", "subject": "s", "item": "i", "type": "view",
                            "occurred_at": datetime.now(UTC).isoformat()}])

    assert len(calls) == 3
    assert err.value.status == 503


def test_a_400_is_not_retried():
    calls: list[bytes] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.read())
        return httpx.Response(400, json={"error": {"code": "invalid", "message": "no"}})

    with pytest.raises(ApiError):
        make_client("k", httpx.MockTransport(refuse)).send_batch([])
    assert len(calls) == 1
    assert json.loads(calls[0]) == {"events": []}


def test_events_need_an_aware_timestamp_and_batches_a_sane_size():
    naive = ClientEvent(subject="a", item="b", type="view",
                        occurred_at=datetime(2024, 1, 1))  # noqa: DTZ001 - the point
    with pytest.raises(ValueError, match="timezone-aware"):
        naive.to_json()
    with pytest.raises(ValueError, match="batch_size"):
        DiscreetClient("http://x", "k", batch_size=1001)
