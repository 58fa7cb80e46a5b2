"""A dependency that is down answers 503 with ``Retry-After`` in the error shape, never 500;
``/healthz`` names which one (issue 16, item 7; README "Security").

The outages are real: the default database connection is replaced by one whose server cannot
be reached (PostgreSQL on a closed port, SQLite in a directory that does not exist), the
cache and the broker point at a closed port. The drivers (psycopg, sqlite3, redis, kombu)
raise their own errors; nothing of ours is patched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connections
from django.test import Client

from tests.factories.events import event_payload

CLOSED = "127.0.0.1"
CLOSED_PORT = 1  # nothing listens on port 1
REDIS_DOWN = f"redis://{CLOSED}:{CLOSED_PORT}/0"


@contextmanager
def database_down() -> Iterator[None]:
    """Requests in the block reach a database server that is not there."""
    original = connections["default"]
    settings_dict = {**original.settings_dict}
    if original.vendor == "sqlite":
        settings_dict["NAME"] = "/nonexistent-discreet-dir/down.sqlite3"
        settings_dict["TEST"] = {**settings_dict.get("TEST", {}), "NAME": settings_dict["NAME"]}
    else:
        settings_dict.update(HOST=CLOSED, PORT=str(CLOSED_PORT))
        settings_dict.setdefault("OPTIONS", {})
        settings_dict["OPTIONS"] = {**settings_dict["OPTIONS"], "connect_timeout": 2}
    down = type(original)(settings_dict, alias="default")
    connections["default"] = down
    try:
        yield
    finally:
        connections["default"] = original
        down.close()


def _assert_unavailable(response, dependency: str) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    body = response.json()
    assert body["error"]["code"] == "service_unavailable"
    assert body["error"]["details"] == {"dependency": dependency}


def test_the_api_answers_503_while_the_database_is_down(tenant, make_client):
    client = make_client(tenant, scopes=["events:write"])
    with database_down():
        response = client.post("/api/v1/events", {"events": [event_payload()]}, format="json")
    _assert_unavailable(response, "database")


def test_pages_outside_the_api_answer_503_too(tenant, admin_user):
    portal = Client(raise_request_exception=False)
    admin = Client(raise_request_exception=False)
    admin.force_login(admin_user)
    with database_down():
        _assert_unavailable(portal.get(f"/privacy/{tenant.slug}/"), "database")
        _assert_unavailable(admin.get("/admin/"), "database")


def test_healthz_names_the_database_when_it_is_down(db):
    with database_down():
        response = Client().get("/healthz")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    body = response.json()
    assert body["down"] == ["database"]
    assert body["checks"]["database"]["status"] == "unreachable"
    assert body["checks"]["cache"]["status"] == "ok"


@pytest.fixture
def redis_cache_down(settings) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": REDIS_DOWN,
                                   "OPTIONS": {"socket_connect_timeout": 2}}}


def test_the_api_answers_503_while_redis_is_down(tenant, make_client, redis_cache_down):
    client = make_client(tenant, scopes=["events:write"])
    # The per-key throttle counts in Redis: every API request needs it.
    response = client.post("/api/v1/events", {"events": [event_payload()]}, format="json")
    _assert_unavailable(response, "redis")


def test_healthz_names_the_cache_when_it_is_down(db, redis_cache_down):
    body = Client().get("/healthz").json()
    assert body["down"] == ["cache"]


def test_healthz_names_the_broker_when_it_is_down(db, settings):
    settings.CELERY_BROKER_URL = REDIS_DOWN
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]


@pytest.fixture
def broker_down(transactional_db, monkeypatch) -> Iterator[None]:
    """Tasks are sent (not run eagerly) to a broker on a closed port."""
    from platform_site.celery import app

    # Celery reads the environment's CELERY_BROKER_URL before its configuration (the
    # PostgreSQL + Redis run sets it), and the prefixed key of the CELERY_ namespace first.
    monkeypatch.setenv("CELERY_BROKER_URL", REDIS_DOWN)
    saved = (app.conf.CELERY_TASK_ALWAYS_EAGER, app.conf.CELERY_BROKER_URL, app._pool,
             app.amqp._producer_pool)
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.CELERY_BROKER_URL = REDIS_DOWN
    # The pools are made from the broker URL on first use: make them again, for port 1.
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        (app.conf.CELERY_TASK_ALWAYS_EAGER, app.conf.CELERY_BROKER_URL, app._pool,
         app.amqp._producer_pool) = saved


def test_an_enqueue_while_the_broker_is_down_answers_503(tenant, make_client, broker_down):
    from platform_site.celery import app
    from tests.factories.events import grant_consent

    grant_consent(tenant, "user-1")
    client = make_client(tenant, scopes=["events:write"])
    response = client.post("/api/v1/events", {"events": [event_payload()]}, format="json")
    assert app.connection_for_write().as_uri().startswith("redis://")
    _assert_unavailable(response, "broker")

