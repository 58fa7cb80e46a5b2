"""Request bodies over their route's limit get 413, in the error shape, before parsing
(issue 16, item 6; README "Security")."""

from __future__ import annotations

import io

import orjson
import pytest
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse

from apps.core.middleware import RequestBodyLimitMiddleware

MIB = 1024 * 1024


def _padded_batch(size: int) -> bytes:
    """A valid event batch of exactly ``size`` bytes (an empty batch and padding)."""
    skeleton = orjson.dumps({"events": [], "pad": ""})
    return orjson.dumps({"events": [], "pad": "x" * (size - len(skeleton))})


def _assert_too_large(response, limit: int) -> None:
    assert response.status_code == 413
    assert orjson.loads(response.content) == {"error": {
        "code": "request_too_large",
        "message": f"The request body is larger than {limit} bytes.",
        "details": {"max_bytes": limit}}}


def test_an_event_batch_over_ten_mib_is_refused(tenant, make_client):
    client = make_client(tenant, scopes=["events:write"])
    body = _padded_batch(10 * MIB + 1)
    response = client.post("/api/v1/events", body, content_type="application/json")
    _assert_too_large(response, 10 * MIB)


def test_an_event_batch_under_the_limit_is_read(tenant, make_client):
    client = make_client(tenant, scopes=["events:write"])
    response = client.post("/api/v1/events", _padded_batch(2 * MIB),
                           content_type="application/json")
    assert response.status_code != 413


def test_other_routes_take_one_mib(tenant, make_client):
    client = make_client(tenant)
    body = orjson.dumps({"name": "x" * MIB})
    response = client.post("/api/v1/items", body, content_type="application/json")
    _assert_too_large(response, MIB)
    # The portal and the admin too: they are not API routes, the shape is the same.
    _assert_too_large(client.post("/privacy/", body, content_type="application/json"), MIB)


def test_the_declared_length_is_enough_nothing_is_read(tenant, make_client):
    """A client announcing 200 MiB is answered at once: the body is never read (the test
    payload holds a few bytes; reading past them would fail the request)."""
    client = make_client(tenant, scopes=["events:write"])
    response = client.post("/api/v1/events", b'{"events": []}', content_type="application/json",
                           CONTENT_LENGTH=str(200 * MIB))
    _assert_too_large(response, 10 * MIB)


def test_the_limits_are_settings(tenant, make_client, settings):
    settings.API_MAX_EVENTS_BODY_BYTES = 1000
    client = make_client(tenant, scopes=["events:write"])
    response = client.post("/api/v1/events", _padded_batch(1001),
                           content_type="application/json")
    _assert_too_large(response, 1000)
    assert client.post("/api/v1/events", _padded_batch(1000),
                       content_type="application/json").status_code != 413


class _ClientInput(io.BytesIO):
    """What the server hands Django: counts the bytes taken from the client."""

    served = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.served += len(data)
        return data


@pytest.mark.parametrize("chunks", [1, 7, 64])
def test_a_body_without_content_length_is_read_only_up_to_the_limit(settings, chunks):
    """Behind an ASGI server a chunked body has no Content-Length: Django's own form parser,
    reading through the middleware, stops one byte past the limit."""
    settings.API_MAX_BODY_BYTES = 1000
    body = b"a=" + b"x" * (chunks * 1000)
    stream = _ClientInput(body)
    scope = {"type": "http", "method": "POST", "path": "/privacy/", "query_string": b"",
             "headers": [(b"content-type", b"application/x-www-form-urlencoded")]}
    request = ASGIRequest(scope, stream)
    assert "CONTENT_LENGTH" not in request.META

    def view(request) -> HttpResponse:
        return HttpResponse(str(len(request.POST["a"])))

    from django.core.handlers.exception import convert_exception_to_response

    handler = convert_exception_to_response(RequestBodyLimitMiddleware(view))
    response = handler(request)
    _assert_too_large(response, 1000)
    assert stream.served <= 1001


def test_a_small_body_without_content_length_passes(settings):
    settings.API_MAX_BODY_BYTES = 1000
    scope = {"type": "http", "method": "POST", "path": "/privacy/", "query_string": b"",
             "headers": [(b"content-type", b"application/x-www-form-urlencoded")]}
    request = ASGIRequest(scope, io.BytesIO(b"a=" + b"x" * 900))
    response = RequestBodyLimitMiddleware(
        lambda r: HttpResponse(str(len(r.POST["a"]))))(request)
    assert response.content == b"900"
