"""Prometheus metrics counted in the web processes (README "Metrics").

Counters live in the process that counts: HTTP requests and their latency per resolved
route pattern (never the raw path, which may hold a subject id), and ingested events by
outcome and reason per tenant slug. With several gunicorn workers, set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, the same for every worker, wiped when the
server starts): prometheus_client then keeps each process's values in a file there and
``/metrics`` sums them. Figures kept in the database (privacy requests, jobs, training,
the active model) are not counted here: ``platform_site/metrics.py`` reads them at scrape
time, so they are right whichever process (web, worker, beat) changed them.

Labels hold route patterns, methods, status codes, reason codes and tenant slugs only:
never a subject's id or pseudonym.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "discreet_http_requests", "HTTP requests by resolved route pattern, method and status.",
    ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "discreet_http_request_duration_seconds",
    "Time to answer an HTTP request, by resolved route pattern and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
EVENTS = Counter(
    "discreet_events", "Events received by the ingestion API, by tenant, outcome "
    "(accepted, duplicate, rejected) and reason code.", ["tenant", "outcome", "reason"])

_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
UNMATCHED = "<unmatched>"
# The labelled children by (route, method, status): ``labels()`` validates and locks on each
# call; a dict lookup does not. Bounded by routes x methods x statuses.
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def count_events(tenant: str, outcomes: Iterable[tuple[str, str | None]]) -> None:
    """Count one batch's events: ``(outcome, reason)`` per event."""
    tally: dict[tuple[str, str], int] = {}
    for outcome, reason in outcomes:
        key = (outcome, reason or "")
        tally[key] = tally.get(key, 0) + 1
    for (outcome, reason), n in tally.items():
        EVENTS.labels(tenant, outcome, reason).inc(n)


class RequestMetricsMiddleware:
    """First in ``MIDDLEWARE``: counts every response and its latency by the URL pattern
    the request resolved to (``<unmatched>`` when none). A few microseconds a request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or UNMATCHED) if match is not None else UNMATCHED
        method = request.method if request.method in _METHODS else "OTHER"
        key = (route, method, response.status_code)
        children = _children.get(key)
        if children is None:  # first time for this route, method and status
            children = _children.setdefault(key, (
                HTTP_REQUESTS.labels(route, method, str(response.status_code)),
                HTTP_LATENCY.labels(route, method)))
        children[0].inc()
        children[1].observe(time.perf_counter() - started)
        return response
