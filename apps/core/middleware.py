"""Request bodies of bounded size (issue 16, item 6; README "Security").

DRF's parsers read the request stream directly, so Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
(checked only by ``request.body`` and form parsing) never applied to the API: a 200 MiB body
with an ``events:write`` key was parsed whole. This middleware, first after security,
answers 413 in the API's error shape before anything reads the body:

* at once when ``Content-Length`` declares more than the route's limit;
* else (no ``Content-Length``: a chunked body behind an ASGI server) by counting what is
  read, in bounded chunks, and stopping one byte past the limit.

Limits: ``API_MAX_EVENTS_BODY_BYTES`` for event ingestion (default 10 MiB, a batch of
1,000 rich events fits), ``API_MAX_BODY_BYTES`` for everything else (default 1 MiB).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from io import RawIOBase
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.urls import NoReverseMatch, reverse

from apps.core.exceptions import RequestBodyTooLarge, error_body

#: How much one read takes from the client when the caller asks for "everything".
CHUNK_BYTES = 64 * 1024


@cache
def _events_path() -> str | None:
    try:
        return reverse("event-ingest")
    except NoReverseMatch:
        return None


def body_limit(request: HttpRequest) -> int:
    """The largest body accepted on this request's route, in bytes."""
    if request.path == _events_path():
        return int(settings.API_MAX_EVENTS_BODY_BYTES)
    return int(settings.API_MAX_BODY_BYTES)


class BoundedStream(RawIOBase):
    """Reads from ``stream`` and raises :class:`RequestBodyTooLarge` once more than
    ``limit`` bytes came through; never asks the client for more than ``limit + 1``."""

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__()
        self._stream = stream
        self._limit = limit
        self._count = 0

    def _counted(self, data: bytes) -> bytes:
        self._count += len(data)
        if self._count > self._limit:
            raise RequestBodyTooLarge(self._limit)
        return data

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(CHUNK_BYTES):
                chunks.append(chunk)
            return b"".join(chunks)
        return self._counted(self._stream.read(min(size, self._limit - self._count + 1)))

    def readline(self, size: int | None = -1, /) -> bytes:
        allowed = self._limit - self._count + 1
        size = allowed if size is None or size < 0 else min(size, allowed)
        return self._counted(self._stream.readline(size))

    def close(self) -> None:
        self._stream.close()
        super().close()


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        limit = body_limit(request)
        declared = _declared_length(request)
        if declared is not None and declared > limit:
            too_large = RequestBodyTooLarge(limit)
            return JsonResponse(error_body(too_large.code, too_large.message, too_large.details),
                                status=too_large.status_code)
        request._stream = BoundedStream(request._stream, limit)  # type: ignore[attr-defined]
        return self.get_response(request)
