"""Fixed-window rate limits for the portal, in the shared Django cache.

Keys are HMACs (under ``SECRET_KEY``) of the IP address or identifier: the cache never
holds an IP address or a subject's identifier, and a key cannot be reversed to one.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from django.conf import settings
from django.core.cache import cache

#: ``scope: (requests, window seconds)``; ``settings.PRIVACY_PORTAL_RATE_LIMITS`` overrides.
DEFAULT_LIMITS: dict[str, tuple[int, int]] = {
    "ip": (30, 3600),          # portal writes (request, verify, start, download) per IP
    "identifier": (5, 3600),   # requests naming one identifier, from anywhere
}


def _limits(scope: str) -> tuple[int, int]:
    configured = getattr(settings, "PRIVACY_PORTAL_RATE_LIMITS", {}) or {}
    limit, window = configured.get(scope, DEFAULT_LIMITS[scope])
    return int(limit), int(window)


def _digest(scope: str, value: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"privacy-rl:{scope}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def allow(scope: str, value: str) -> bool:
    """Count one hit for ``value`` in ``scope``; False once over the limit."""
    limit, window = _limits(scope)
    bucket = int(time.time() // window)
    key = f"privacy:rl:{scope}:{_digest(scope, value)}:{bucket}"
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        count = 1
    return count <= limit
