from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient

from apps.tenants.models import Tenant
from tests.factories.tenants import TenantFactory, make_api_key

pytest_plugins = ["tests.integration_support"]


@pytest.fixture
def tenant(db) -> Tenant:
    return TenantFactory()


@pytest.fixture
def other_tenant(db) -> Tenant:
    return TenantFactory()


@pytest.fixture
def make_client() -> Callable[..., APIClient]:
    """``make_client(tenant, scopes=[...])``: an API client authenticated by a fresh key."""

    def build(tenant: Tenant, scopes: list[str] | None = None) -> APIClient:
        _, raw_key = make_api_key(tenant, scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        return client

    return build


@pytest.fixture
def api(tenant, make_client) -> APIClient:
    """A client with every scope for ``tenant``."""
    return make_client(tenant)


@pytest.fixture
def other_api(other_tenant, make_client) -> APIClient:
    return make_client(other_tenant)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the configured log handlers write (their filters included), instead of stderr."""
    from apps.core.pii import MaskPersonalDataFilter

    loggers = [logging.getLogger(name) for name in (
        None, "django.request", "django.server", "gunicorn.access", "gunicorn.error")]
    handlers = {h for lg in loggers for h in lg.handlers if isinstance(h, logging.StreamHandler)
                and any(isinstance(f, MaskPersonalDataFilter) for f in h.filters)}
    assert handlers, "no configured log handler found"
    buffer = io.StringIO()
    previous = {handler: handler.setStream(buffer) for handler in handlers}
    yield buffer
    for handler, stream in previous.items():
        handler.setStream(stream)
