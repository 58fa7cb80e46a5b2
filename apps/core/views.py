"""Health check: is the platform able to do its work right now?"""

from __future__ import annotations

import logging
import time

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core.exceptions import retry_after_seconds

logger = logging.getLogger("core.health")


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_cache() -> str:
    from django.core.cache import cache

    key = "discreet:healthz"
    cache.set(key, "ok", timeout=30)
    if cache.get(key) != "ok":
        raise RuntimeError("the cache did not keep a value")
    return "ok"


def _check_broker() -> str:
    from celery import current_app as app  # the project's app (platform_site.celery)
    from django.conf import settings

    with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    return "ok"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Each dependency's state; 503 with ``down`` naming those unreachable (README
    "HTTP API"): load balancers take the process out, operators see which one."""
    checks: dict[str, dict[str, object]] = {}
    for name, check in (("database", _check_database), ("cache", _check_cache),
                        ("broker", _check_broker)):
        started = time.perf_counter()
        try:
            status = check()
        except Exception as exc:
            logger.warning("core.health_failed check=%s error=%s", name, type(exc).__name__)
            status = "unreachable"
        checks[name] = {"status": status, "ms": round((time.perf_counter() - started) * 1000, 1)}
    down = [name for name, c in checks.items() if c["status"] != "ok"]
    response = JsonResponse(
        {"status": "degraded" if down else "ok", "down": down, "checks": checks},
        status=503 if down else 200,
    )
    if down:
        response["Retry-After"] = retry_after_seconds()
    return response
