"""Per-key request rates that hold under concurrency (README "Security").

DRF's ``SimpleRateThrottle`` reads a key's request history from the cache, appends and
writes it back: two processes (or threads) that read at once both pass, so 50 concurrent
clients of a key limited to 100/min got 113-199 requests through. Here each request takes
a number from one atomic counter per key and fixed window (``cache.add`` creates it with
its expiry, ``cache.incr`` counts; on Django's Redis cache one Lua script does both in a
single round trip): Redis ``INCR``, memcached ``incr`` and the local-memory
cache's locked ``incr`` are atomic, so exactly ``limit`` requests per window pass, however
many arrive at once. Windows are aligned to the epoch (a minute limit counts per calendar
minute), so a client can spend one window's limit at its end and the next one's at once.

The cache must be one that increments atomically and is shared by every web process:
Redis (``CACHE_URL``) in production; the embedded default's local memory serves its one
web process. System checks refuse other backends, and ``check --deploy`` warns about a
per-process one.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from apps.tenants.models import ApiKey

# Cache backends whose ``add`` and ``incr`` are atomic (a lock, or one server command).
ATOMIC_CACHE_BACKENDS = frozenset({
    "django.core.cache.backends.redis.RedisCache",
    "django_redis.cache.RedisCache",
    "django.core.cache.backends.memcached.PyMemcacheCache",
    "django.core.cache.backends.memcached.PyLibMCCache",
    "django.core.cache.backends.locmem.LocMemCache",
})


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per-key request rate; a key's own ``rate_limit_per_minute`` overrides the default."""

    scope = "api_key"
    cache_alias = "default"

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True  # unauthenticated requests are refused before they cost anything
        limit, duration = self.num_requests, self.duration
        if api_key.rate_limit_per_minute:
            limit, duration = api_key.rate_limit_per_minute, 60
        if limit is None or duration is None:
            return True
        now = time.time()
        window = int(now // duration)
        self._window_ends_at = (window + 1) * duration
        self._now = now
        # The prefix, not the pk: unique across databases that share one Redis.
        key = f"throttle:api_key:{api_key.prefix}:{duration}:{window}"
        return self._count(key, ttl=duration + 1) <= limit

    def _count(self, key: str, *, ttl: int) -> int:
        """This request's number in its window, from one atomic increment."""
        cache = caches[self.cache_alias]
        if isinstance(cache, RedisCache):
            return _redis_count(cache, key, ttl=ttl)
        for _ in range(2):
            cache.add(key, 0, timeout=ttl)  # atomic: only the window's first request creates it
            try:
                return cache.incr(key)
            except ValueError:  # expired or evicted between add and incr: create it again
                continue
        return cache.incr(key)

    def wait(self) -> float | None:
        ends_at = getattr(self, "_window_ends_at", None)
        if ends_at is None:
            return None
        return max(0.0, ends_at - self._now)


# INCR, and the window's expiry when this INCR created the key: one script, so one round
# trip to Redis and atomic (Redis runs a script whole). Django's ``add`` + ``incr`` took
# three round trips (SET NX, EXISTS, INCR) on every API request (issue 18).
_INCR_WITH_EXPIRY = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
_script: Any = None  # redis-py's Script: EVALSHA, EVAL when the server lacks it


def _redis_count(cache: RedisCache, key: str, *, ttl: int) -> int:
    global _script
    full_key = cache.make_and_validate_key(key)  # the key Django's own calls would use
    # Django builds a new redis-py client object on every call (~0.1 ms); one per cache
    # object (so per thread) on the same connection pool does the same.
    client = cache.__dict__.get("_discreet_write_client")
    if client is None:
        client = cache.__dict__["_discreet_write_client"] = cache._cache.get_client(
            full_key, write=True)
    if _script is None:
        _script = client.register_script(_INCR_WITH_EXPIRY)
    return int(_script(keys=[full_key], args=[ttl], client=client))


def check_throttle_cache(**kwargs: Any) -> list[checks.CheckMessage]:
    """Rate limits count in the default cache: it must increment atomically (registered in
    ``TenantsConfig.ready``)."""
    backend = _throttle_cache_backend()
    if backend not in ATOMIC_CACHE_BACKENDS:
        return [checks.Error(
            f"The cache backend {backend!r} does not increment atomically: per-key rate "
            "limits would let more requests through than allowed.",
            hint="Set CACHE_URL to Redis (rediscache://host:6379/1).", id="tenants.E016")]
    return []


def check_throttle_cache_is_shared(**kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: production's web processes must share the counters."""
    if _throttle_cache_backend().endswith(".LocMemCache"):
        return [checks.Warning(
            "The local-memory cache is per process: with several web processes each one "
            "counts its own requests, and a key gets its rate limit once per process.",
            hint="Set CACHE_URL to Redis (rediscache://host:6379/1).", id="tenants.W016")]
    return []


def _throttle_cache_backend() -> str:
    return str(settings.CACHES.get(ApiKeyRateThrottle.cache_alias, {}).get("BACKEND", ""))
