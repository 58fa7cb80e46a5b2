"""Edges (issue 17, item 6): the landing page, JSON 404/405 under /api/, and the portal
link ``make run`` prints."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories.tenants import TenantFactory

pytestmark = pytest.mark.django_db

SHAPE_KEYS = {"code", "message", "details"}


def _is_error_shape(response, code: str) -> bool:
    body = response.json()
    return set(body) == {"error"} and set(body["error"]) == SHAPE_KEYS \
        and body["error"]["code"] == code


def test_the_landing_page_links_to_the_console_the_docs_and_the_portal(db):
    TenantFactory(slug="demo")
    response = Client().get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for link in ('href="/admin/"', 'href="/api/docs/"', 'href="/privacy/demo/"'):
        assert link in html
    assert "<script" not in html


def test_the_landing_page_names_no_tenant_but_the_demo(db):
    TenantFactory(slug="acme-secret", name="Acme Secret Corp")
    html = Client().get("/").content.decode()
    assert "acme" not in html.lower()
    assert "/privacy/&lt;tenant&gt;/" in html


def test_view_site_in_the_admin_leads_to_the_landing_page(db, member_client):
    tenant = TenantFactory()
    html = member_client(tenant).get("/admin/").content.decode()
    assert 'href="/"' in html
    assert Client().get("/").status_code == 200


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/", "/api/nope", "/api/v1/nope", "/api/v1/events/x/y",
                                  "/api/v2/events", "/api/v1/privacy-requests/1/nothing"])
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_every_unknown_path_under_api_is_a_json_404(settings, debug, path, method):
    settings.DEBUG = debug
    response = getattr(Client(), method)(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert _is_error_shape(response, "not_found")


def _api_routes() -> list[tuple[str, object]]:
    """``(path with sample values, view)`` for every route under /api/."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif (isinstance(p, URLPattern) and route.startswith("api/") and "<" in route) \
                    or (isinstance(p, URLPattern) and route.startswith("api/")):
                found.append((route, p.callback))

    walk(get_resolver().url_patterns, "")
    return found


def _sample(route: str) -> str:
    route = route.lstrip("^").rstrip("$")
    route = re.sub(r"<int:\w+>", "1", route)
    route = re.sub(r"<(?:str|slug|path|uuid)?:?\w+>", "x", route)
    return "/" + route


def test_every_api_route_answers_a_method_it_lacks_with_a_json_405(tenant, make_client):
    client = make_client(tenant)
    checked = 0
    for route, view in _api_routes():
        cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
        if cls is None or "(?P" in route or route in ("api/", "api/v1/"):
            continue
        allowed = {m for m in ("get", "post", "put", "patch", "delete")
                   if hasattr(cls, m)}
        missing = [m for m in ("put", "delete", "patch", "post") if m not in allowed]
        if not missing:
            continue
        path = _sample(route)
        response = getattr(client, missing[0])(path, data={}, format="json")
        assert response.status_code in (405, 404), (path, response.status_code)
        assert response["Content-Type"].startswith("application/json"), path
        code = "method_not_allowed" if response.status_code == 405 else "not_found"
        assert _is_error_shape(response, code), (path, response.content)
        checked += response.status_code == 405
    assert checked >= 10


def test_make_run_prints_the_portal_and_a_signed_link_that_opens_it(db):
    out = io.StringIO()
    call_command("seed_demo", base_url="http://127.0.0.1:8000", stdout=out,
                 stderr=io.StringIO())
    text = out.getvalue()
    assert "Portal:       http://127.0.0.1:8000/privacy/demo/" in text
    link = re.search(r"As demo-user-0003 .*?: (http://\S+)", text).group(1)
    assert link.startswith("http://127.0.0.1:8000/privacy/demo/start?token=")
    portal = Client()
    response = portal.get(link.removeprefix("http://127.0.0.1:8000"), follow=True)
    assert response.status_code == 200
    assert "My data" in response.content.decode()
    # Signed links are single-use.
    again = Client().get(link.removeprefix("http://127.0.0.1:8000"), follow=True)
    assert "My data" not in again.content.decode()
    assert text.strip().splitlines()[-1].startswith("dk_") or len(
        text.strip().splitlines()[-1]) > 20  # the API key stays the last line
