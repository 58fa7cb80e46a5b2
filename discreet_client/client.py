"""The client itself: plain httpx, synchronous, no other dependency (orjson is used when it
is installed: a batch of 500 events encodes several times faster).

Every public route of ``/api/v1/`` has one method here; answers are the parsed JSON, typed
by :mod:`discreet_client.types`. Every failure raises :class:`ApiError` with the API's
error ``code`` (``unreachable`` when no answer came at all)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import httpx

try:
    import orjson
except ImportError:  # pragma: no cover - the platform's own environment has it
    orjson = None

from discreet_client.types import (
    ApiKey,
    ApiRoot,
    ItemUpsertTotals,
    Level,
    ModelBundle,
    PrivacyKind,
    PrivacyRequest,
    Recommendations,
    Regime,
    RetentionPolicy,
    SubjectConsent,
    TenantSettings,
    Webhook,
)

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 1000
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class ApiError(Exception):
    """A non-retryable (or retried-out) error answer: ``status`` and the API's ``code``.
    When no answer came (timeouts, refused connections, after the retries) ``status`` is 0
    and ``code`` is ``unreachable``; the transport error is the ``__cause__``."""

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


def _segment(value: str) -> str:
    """One path segment: subject and item ids may hold ``/``, ``?`` or ``%``."""
    return quote(value, safe="")


def _params(**values: Any) -> dict[str, str]:
    """Query parameters, leaving out the unset ones (the server's defaults apply)."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            out[name] = ",".join(value)
        else:
            out[name] = str(value)
    return out


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
                headers: Mapping[str, str] | None = None,
                params: Mapping[str, str] | None = None) -> tuple[httpx.Response, int]:
        """Send one request with retries; return the final response and the retry count.
        Raises :class:`ApiError` for an error answer, and when every attempt failed to get
        one (``code`` ``unreachable``)."""
        content = None if body is None else _dumps(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, path, content=content,
                                               headers=all_headers, params=params)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise ApiError(0, "unreachable", f"{type(exc).__name__}: {exc}") from exc
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

    def upsert_items(self, items: Iterable[Mapping[str, Any]]) -> ItemUpsertTotals:
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
        return cast(ItemUpsertTotals, totals)

    def deactivate_item(self, item: str) -> None:
        """``DELETE /api/v1/items/{item}``: the item is never recommended again."""
        self.request("DELETE", "items/" + _segment(item))

    def _json(self, method: str, path: str, *, body: Any = None,
              params: Mapping[str, str] | None = None) -> Any:
        response, _ = self.request(method, path, body=body, params=params)
        return _loads(response) if response.content else None

    def _pages(self, path: str, page_size: int = 100) -> Iterator[Any]:
        """Every result of a cursor-paginated list, page after page."""
        params: dict[str, str] | None = {"page_size": str(page_size)}
        url = path
        while True:
            page = self._json("GET", url, params=params)
            yield from page["results"]
            if not page.get("next"):
                return
            url, params = page["next"], None  # the next link carries the cursor

    # -- keys -----------------------------------------------------------------------------

    def whoami(self) -> ApiRoot:
        """``GET /api/v1/``: this key's tenant, scopes and the API's links."""
        return cast(ApiRoot, self._json("GET", ""))

    def list_api_keys(self) -> list[ApiKey]:
        """``GET /api/v1/api-keys`` (every page)."""
        return [cast(ApiKey, key) for key in self._pages("api-keys")]

    def get_api_key(self, key_id: int) -> ApiKey:
        return cast(ApiKey, self._json("GET", f"api-keys/{int(key_id)}"))

    def revoke_api_key(self, key_id: int) -> None:
        """``DELETE /api/v1/api-keys/{id}``: the key stops working at once."""
        self.request("DELETE", f"api-keys/{int(key_id)}")

    # -- consent --------------------------------------------------------------------------

    def get_consent(self, subject: str) -> SubjectConsent:
        """``GET /api/v1/subjects/{subject}/consent``: purposes, level, flags, history."""
        return cast(SubjectConsent,
                    self._json("GET", f"subjects/{_segment(subject)}/consent"))

    def set_consent(self, subject: str, *, purposes: Mapping[str, bool] | None = None,
                    level: Level | None = None, notice_version: str | None = None,
                    source: str | None = None, flags: Mapping[str, Any] | None = None,
                    gpc_override: bool | None = None, gpc: bool | None = None,
                    ) -> SubjectConsent:
        """``PUT /api/v1/subjects/{subject}/consent``: record decisions (at least one of
        ``purposes``, ``level``, ``flags``). A withdrawal reaches the model before this
        returns. Idempotent: sending the same state again records nothing new."""
        body: dict[str, Any] = {}
        for name, value in (("purposes", purposes), ("level", level),
                            ("notice_version", notice_version), ("source", source),
                            ("flags", flags), ("gpc_override", gpc_override)):
            if value is not None:
                body[name] = dict(value) if isinstance(value, Mapping) else value
        use_gpc = self.gpc if gpc is None else gpc
        response, _ = self.request("PUT", f"subjects/{_segment(subject)}/consent", body=body,
                                   headers={"Sec-GPC": "1"} if use_gpc else None)
        return cast(SubjectConsent, _loads(response))

    def lift_restriction(self, subject: str) -> SubjectConsent:
        """``DELETE /api/v1/subjects/{subject}/restriction``: processing may resume."""
        return cast(SubjectConsent,
                    self._json("DELETE", f"subjects/{_segment(subject)}/restriction"))

    # -- recommendations ------------------------------------------------------------------

    def recommendations(self, subject: str, *, n: int | None = None,
                        categories: Sequence[str] | None = None,
                        exclude_seen: bool | None = None,
                        explain: bool | None = None) -> Recommendations:
        """``GET /api/v1/recommendations`` for one subject (their consent and level are
        checked on every call; ``reason`` says why an answer is not personalized)."""
        return cast(Recommendations, self._json("GET", "recommendations", params=_params(
            subject=subject, n=n, categories=categories, exclude_seen=exclude_seen,
            explain=explain)))

    def session_recommendations(self, recent_items: Sequence[str], *, n: int | None = None,
                                categories: Sequence[str] | None = None) -> Recommendations:
        """``POST /api/v1/recommendations/session``: from items seen in this visit only,
        for visitors with no stored profile."""
        body: dict[str, Any] = {"recent_items": list(recent_items)}
        if n is not None:
            body["n"] = n
        if categories is not None:
            body["categories"] = list(categories)
        return cast(Recommendations, self._json("POST", "recommendations/session", body=body))

    def similar_items(self, item: str, *, n: int | None = None,
                      categories: Sequence[str] | None = None) -> Recommendations:
        """``GET /api/v1/items/{item}/similar``."""
        return cast(Recommendations, self._json(
            "GET", f"items/{_segment(item)}/similar", params=_params(n=n, categories=categories)))

    def model_bundle(self) -> ModelBundle:
        """``GET /api/v1/model-bundle``: item embeddings for scoring on the client side."""
        return cast(ModelBundle, self._json("GET", "model-bundle"))

    # -- privacy requests -----------------------------------------------------------------

    def create_privacy_request(self, kind: PrivacyKind, subject: str, *,
                               regime: Regime | None = None,
                               details: Mapping[str, Any] | None = None) -> PrivacyRequest:
        """``POST /api/v1/privacy-requests``. Safe to retry: while a request for the same
        subject and kind is open, the answer is that request (``duplicate_of``)."""
        body: dict[str, Any] = {"kind": kind, "subject": subject}
        if regime is not None:
            body["regime"] = regime
        if details is not None:
            body["details"] = dict(details)
        return cast(PrivacyRequest, self._json("POST", "privacy-requests", body=body))

    def get_privacy_request(self, request_id: int) -> PrivacyRequest:
        return cast(PrivacyRequest, self._json("GET", f"privacy-requests/{int(request_id)}"))

    def approve_privacy_request(self, request_id: int) -> PrivacyRequest:
        """``POST /api/v1/privacy-requests/{id}/approve`` (a request in
        ``awaiting_approval``; fulfilment starts)."""
        return cast(PrivacyRequest,
                    self._json("POST", f"privacy-requests/{int(request_id)}/approve", body={}))

    def deny_privacy_request(self, request_id: int, reason: str) -> PrivacyRequest:
        """``POST /api/v1/privacy-requests/{id}/deny``: rejected; the reason is sent to the
        subject."""
        return cast(PrivacyRequest, self._json(
            "POST", f"privacy-requests/{int(request_id)}/deny", body={"reason": reason}))

    def wait_for_privacy_request(self, request_id: int, *, statuses: Iterable[str] = (
            "completed", "rejected"), timeout: float = 60.0, interval: float = 0.5,
            ) -> PrivacyRequest:
        """Poll until the request reaches one of ``statuses`` (webhooks avoid polling)."""
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while True:
            current = self.get_privacy_request(request_id)
            if current["status"] in wanted:
                return current
            if time.monotonic() > deadline:
                raise ApiError(0, "timeout", f"request {request_id} is still "
                               f"{current['status']} after {timeout}s")
            self._sleep(interval)

    # -- retention ------------------------------------------------------------------------

    def retention_policies(self) -> list[RetentionPolicy]:
        """``GET /api/v1/retention-policies``: every data category and how long it is kept."""
        return cast(list[RetentionPolicy], self._json("GET", "retention-policies"))

    def get_retention_policy(self, category: str) -> RetentionPolicy:
        return cast(RetentionPolicy,
                    self._json("GET", f"retention-policies/{_segment(category)}"))

    def set_retention_policy(self, category: str, *, days: int | None = None,
                             hours: int | None = None) -> RetentionPolicy:
        """``PUT /api/v1/retention-policies/{category}`` with exactly one of ``days`` or
        ``hours``."""
        if (days is None) == (hours is None):
            raise ValueError("give exactly one of days or hours")
        body = {"days": days} if days is not None else {"hours": hours}
        return cast(RetentionPolicy,
                    self._json("PUT", f"retention-policies/{_segment(category)}", body=body))

    # -- settings -------------------------------------------------------------------------

    def get_settings(self) -> TenantSettings:
        """``GET /api/v1/settings``: every setting's effective value (``settings``), the
        ones set rather than defaulted (``customized``) and their declarations (type,
        range or choices, default, help)."""
        return cast(TenantSettings, self._json("GET", "settings"))

    def update_settings(self, changes: Mapping[str, Any]) -> TenantSettings:
        """``PATCH /api/v1/settings`` with ``{name: value}`` (``None``: back to the
        default): all or nothing; an unknown name or a bad value is an :class:`ApiError`
        (400) whose ``details`` name the fields, and nothing changes."""
        return cast(TenantSettings, self._json("PATCH", "settings", body=dict(changes)))

    def records_of_processing(self, *, as_csv: bool = False) -> dict[str, Any] | str:
        """``GET /api/v1/records-of-processing`` (GDPR Art. 30): JSON, or the CSV text."""
        if not as_csv:
            return cast(dict[str, Any], self._json("GET", "records-of-processing"))
        response, _ = self.request("GET", "records-of-processing",
                                   headers={"Accept": "text/csv"})
        return response.text

    # -- webhooks -------------------------------------------------------------------------

    def list_webhooks(self) -> list[Webhook]:
        """``GET /api/v1/webhooks`` (every page)."""
        return [cast(Webhook, hook) for hook in self._pages("webhooks")]

    def get_webhook(self, webhook_id: int) -> Webhook:
        return cast(Webhook, self._json("GET", f"webhooks/{int(webhook_id)}"))

    def create_webhook(self, url: str, events: Sequence[str], *,
                       description: str | None = None) -> Webhook:
        """``POST /api/v1/webhooks``. The answer holds the signing ``secret``: it is shown
        this once (verify deliveries with :func:`discreet_client.verify_signature`)."""
        body: dict[str, Any] = {"url": url, "events": list(events)}
        if description is not None:
            body["description"] = description
        return cast(Webhook, self._json("POST", "webhooks", body=body))

    def delete_webhook(self, webhook_id: int) -> None:
        """``DELETE /api/v1/webhooks/{id}``: no more deliveries."""
        self.request("DELETE", f"webhooks/{int(webhook_id)}")
