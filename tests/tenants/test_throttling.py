"""Per-key rate limits hold under concurrency (README "Security", issue 16 item 5).

50 concurrent clients send 200 requests with a key limited to 100/min: exactly 100 pass.
The clock is pinned inside one minute, so the burst cannot straddle two windows. The first
test runs the whole DRF request path in threads against the configured cache (local memory
on the embedded default, Redis when ``CACHE_URL`` is set); the second sends real HTTP to a
live server and runs where the database can be shared by threads (PostgreSQL).
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
import time_machine
from django.db import connection
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate

from apps.tenants.apis import ApiRootApi
from apps.tenants.authentication import ApiKeyPrincipal
from apps.tenants.models import ApiKey
from apps.tenants.throttling import check_throttle_cache, check_throttle_cache_is_shared
from tests.factories.tenants import TenantFactory, make_api_key

CLIENTS = 50
PER_CLIENT = 4
LIMIT = 100
# Half a second into a minute: the burst has 59.5 s before the next window.
IN_ONE_WINDOW = datetime(2026, 11, 3, 10, 15, 0, 500_000, tzinfo=UTC)


def _limited_key(tenant) -> tuple[ApiKey, str]:
    api_key, raw = make_api_key(tenant, name="limited")
    ApiKey.objects.for_tenant(tenant).filter(pk=api_key.pk).update(rate_limit_per_minute=LIMIT)
    return (ApiKey.all_tenants.select_related("tenant").get(pk=api_key.pk), raw)


def _burst(send: Callable[[], int]) -> Counter[int]:
    """``CLIENTS`` threads, released together, each sending ``PER_CLIENT`` requests."""
    barrier = threading.Barrier(CLIENTS)
    codes: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            barrier.wait()
            codes.extend(send() for _ in range(PER_CLIENT))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    return Counter(codes)


def test_concurrent_requests_never_pass_the_limit(tenant):
    api_key, _ = _limited_key(tenant)
    factory, view = APIRequestFactory(), ApiRootApi.as_view()

    def send() -> int:
        request = factory.get("/api/v1/")
        force_authenticate(request, user=ApiKeyPrincipal(api_key), token=api_key)
        return view(request).status_code

    with time_machine.travel(IN_ONE_WINDOW, tick=False):
        assert _burst(send) == {200: LIMIT, 429: CLIENTS * PER_CLIENT - LIMIT}


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="needs a database that the live server's threads can share")
@pytest.mark.django_db(transaction=True)
def test_concurrent_http_clients_never_pass_the_limit(live_server):
    _, raw = _limited_key(TenantFactory())
    # One connection per request: no server thread is left holding a database connection.
    headers = {"Authorization": f"Bearer {raw}", "Connection": "close"}

    def send() -> int:
        with httpx.Client(base_url=live_server.url, headers=headers, timeout=60) as client:
            return client.get("/api/v1/").status_code

    with time_machine.travel(IN_ONE_WINDOW, tick=False):
        assert _burst(send) == {200: LIMIT, 429: CLIENTS * PER_CLIENT - LIMIT}


def test_a_throttled_answer_says_when_to_retry(tenant):
    api_key, raw = _limited_key(tenant)
    ApiKey.objects.for_tenant(tenant).filter(pk=api_key.pk).update(rate_limit_per_minute=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    with time_machine.travel(IN_ONE_WINDOW, tick=False):
        assert client.get("/api/v1/").status_code == 200
        throttled = client.get("/api/v1/")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert throttled["Retry-After"] == "60"  # 59.5 s left in the window, rounded up


def test_a_cache_without_atomic_increments_is_refused(settings):
    settings.CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache"}}
    assert [m.id for m in check_throttle_cache()] == ["tenants.E016"]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert check_throttle_cache() == []
    assert [m.id for m in check_throttle_cache_is_shared()] == ["tenants.W016"]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:6379/1"}}
    assert check_throttle_cache() == check_throttle_cache_is_shared() == []
