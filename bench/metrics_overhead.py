"""What the request-metrics middleware adds per request (README "Metrics"): the middleware
around a view that does nothing, against the bare view. Prints microseconds per request.

    DJANGO_SETTINGS_MODULE=platform_site.settings.test .venv/bin/python bench/metrics_overhead.py
"""

from __future__ import annotations

import timeit

import django

django.setup()

from django.http import HttpResponse  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.urls import resolve  # noqa: E402

from apps.core.metrics import RequestMetricsMiddleware  # noqa: E402

request = RequestFactory().get("/api/v1/events")
request.resolver_match = resolve("/api/v1/events")
response = HttpResponse()


def view(_request):
    return response


wrapped = RequestMetricsMiddleware(view)
N = 200_000
bare = min(timeit.repeat(lambda: view(request), number=N, repeat=5)) / N
timed = min(timeit.repeat(lambda: wrapped(request), number=N, repeat=5)) / N
print(f"middleware overhead: {(timed - bare) * 1e6:.2f} µs per request")
