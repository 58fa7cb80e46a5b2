"""The client itself: plain httpx, synchronous, no other dependency (orjson is used when it
is installed: a batch of 500 events encodes several times faster)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

try:
    import orjson
except ImportError:  # pragma: no cover - the platform's own environment has it
    orjson = None

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 1000
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class ApiError(Exception):
    """A non-retryable (or retried-out) error answer: ``status`` and the API's ``code``."""

    def __init__(self, status: int, code: str, message: str,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})


def _dumps(body: Any) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(body)
        except TypeError:  # e.g. an integer beyond 64 bits: the standard library takes it
            pass
    return json.dumps(body, separators=(",", ":")).encode()


def _loads(response: httpx.Response) -> Any:
    return orjson.loads(response.content) if orjson is not None else response.json()


def _now() -> datetime:
    return datetime.now(UTC)


def _new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Event:
    """One interaction. ``event_id`` is generated once, at creation, so retries reuse it."""

    subject: str
    item: str
    type: str
    occurred_at: datetime = field(default_factory=_now)
    value: float | None = None
    properties: dict[str, Any] | None = None
    event_id: str = field(default_factory=_new_event_id)

    def to_json(self) -> dict[str, Any]:
        stamp = self.occurred_at
        if stamp.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        body: dict[str, Any] = {"event_id": self.event_id, "subject": self.subject,
                                "item": self.item, "type": self.type,
                                "occurred_at": stamp.isoformat()}
        if self.value is not None:
            body["value"] = self.value
        if self.properties:
            body["properties"] = self.properties
        return body


@dataclass(frozen=True)
class EventResult:
    index: int          # position in the events passed to send_events (over all batches)
    status: str         # "accepted" | "duplicate" | "rejected"
    reason: str | None


@dataclass
class IngestSummary:
    """Totals over every batch of one ``send_events`` call."""

    results: list[EventResult] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped_properties: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    retries: int = 0

    def rejected_by_reason(self) -> Counter[str]:
        return Counter(r.reason for r in self.results if r.status == "rejected" and r.reason)

    def add(self, body: Mapping[str, Any], offset: int) -> None:
        self.results.extend(EventResult(offset + int(r["index"]), str(r["status"]),
                                        r.get("reason")) for r in body["results"])
        self.accepted += int(body["accepted"])
        self.duplicates += int(body["duplicates"])
        self.rejected += int(body["rejected"])
        self.dropped_properties.update(body.get("dropped_properties") or {})
        self.batches += 1


def _batches(events: Sequence[Event | Mapping[str, Any]], size: int
             ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    for start in range(0, len(events), size):
        chunk = events[start:start + size]
        yield start, [e.to_json() if isinstance(e, Event) else dict(e) for e in chunk]


class DiscreetClient:
    """Discreet API client for client sites: events, catalog.

    ``max_retries``: extra attempts for transport errors (timeouts, refused connections)
    and 429/502/503/504 answers, with exponential backoff and jitter (``Retry-After`` is
    honoured). A retried request is byte-for-byte the same, event ids included.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        gpc: bool = False,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be within 1..{MAX_BATCH_SIZE}")
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.gpc = gpc
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1/",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                     "User-Agent": "discreet-client/0.1"},
            timeout=timeout,
            transport=transport,
        )

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DiscreetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                return min(float(retry_after), self.max_backoff)
        base = min(self.backoff * (2 ** attempt), self.max_backoff)
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not security

    def request(self, method: str, path: str, *, body: Any = None,
                headers: Mapping[str, str] | None = None) -> tuple[httpx.Response, int]:
        """Send one request with retries; return the final response and the retry count.
        Raises :class:`ApiError` for an error answer and the last transport error when
        every attempt failed to get one."""
        content = None if body is None else _dumps(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, path, content=content,
                                               headers=all_headers)
            except httpx.TransportError:
                if attempt >= self.max_retries:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    break
            self._sleep(self._delay(attempt, response))
            attempt += 1
        if response is None:  # unreachable: the loop leaves with a response or raises
            raise RuntimeError("no response")
        if response.status_code >= httpx.codes.BAD_REQUEST:
            try:
                error = _loads(response)["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text[:200]}
            raise ApiError(response.status_code, str(error.get("code")),
                           str(error.get("message")), error.get("details"))
        return response, attempt

    # -- API ------------------------------------------------------------------------------

    def send_batch(self, events: Sequence[Event | Mapping[str, Any]], *,
                   gpc: bool | None = None) -> tuple[dict[str, Any], int]:
        """One ``POST /api/v1/events`` (at most 1,000 events); the raw answer and retries."""
        if len(events) > MAX_BATCH_SIZE:
            raise ValueError(f"at most {MAX_BATCH_SIZE} events per batch")
        payload = [e.to_json() if isinstance(e, Event) else dict(e) for e in events]
        use_gpc = self.gpc if gpc is None else gpc
        response, retries = self.request("POST", "events", body={"events": payload},
                                         headers={"Sec-GPC": "1"} if use_gpc else None)
        return _loads(response), retries

    def send_events(self, events: Iterable[Event | Mapping[str, Any]], *,
                    gpc: bool | None = None) -> IngestSummary:
        """Send events in batches of ``batch_size``; results are indexed over all of them."""
        items = list(events)
        summary = IngestSummary()
        use_gpc = self.gpc if gpc is None else gpc
        for offset, payload in _batches(items, self.batch_size):
            response, retries = self.request(
                "POST", "events", body={"events": payload},
                headers={"Sec-GPC": "1"} if use_gpc else None)
            summary.add(_loads(response), offset)
            summary.retries += retries
        return summary

    def upsert_items(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """``PUT /api/v1/items`` in batches of 1,000; totals of the answers."""
        rows = [dict(item) for item in items]
        totals: dict[str, Any] = {"received": 0, "created": 0, "updated": 0,
                                  "dropped_attributes": Counter()}
        for start in range(0, len(rows), MAX_BATCH_SIZE):
            response, _ = self.request("PUT", "items",
                                       body={"items": rows[start:start + MAX_BATCH_SIZE]})
            body = _loads(response)
            for name in ("received", "created", "updated"):
                totals[name] += int(body[name])
            totals["dropped_attributes"].update(body.get("dropped_attributes") or {})
        totals["dropped_attributes"] = dict(totals["dropped_attributes"])
        return totals

    def deactivate_item(self, item: str) -> None:
        """``DELETE /api/v1/items/{item}``: the item is never recommended again."""
        self.request("DELETE", "items/" + quote(item, safe=""))
