"""Every API route x every HTTP method x every scope (README "Security", issue 16 item 2).

The routes come from the URLconf, so a new route is walked without editing this file. For
each one, a key holding exactly one scope sends every method, with ``Sec-GPC: 1``:

* each method the view handles is opened by exactly one scope (the one it declares), and
  ``HEAD`` by the same scope as ``GET``; only ``OPEN_ROUTES`` take any valid key;
* a method the view does not handle is a 405 for every key, and nothing runs;
* ``OPTIONS`` needs a valid key, and answers every key alike;
* no safe method (GET, HEAD, OPTIONS) changes a row of any table for any of these keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter
from rest_framework.response import Response
from rest_framework.test import APIClient, force_authenticate

from apps.consent.models import ConsentRecord
from apps.tenants.apis import TenantApi
from apps.tenants.authentication import ApiKeyPrincipal
from apps.tenants.models import ApiKey, Scope
from apps.tenants.permissions import ANY_VALID_KEY, handles, required_scope_for
from apps.tenants.services import create_api_key
from tests.factories.tenants import make_api_key

METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE")
SAFE = ("GET", "HEAD", "OPTIONS")
LABELS = tuple(Scope.values)
# Routes any valid key may call, whatever its scopes: who am I.
OPEN_ROUTES = {"api-root"}
SUBJECT = "org/a@b.example"  # a subject id with a "/" and an address in it
# URL arguments by name; an int argument names an object that does not exist.
ARGUMENTS = {"subject": SUBJECT, "item": "sku-1", "category": "events"}


@dataclass(frozen=True)
class Route:
    name: str
    pattern: URLPattern

    @property
    def view(self) -> Any:
        callback = self.pattern.callback
        return getattr(callback, "view_class", None) or callback.cls

    def url(self) -> str:
        kwargs = {
            name: 999_999 if isinstance(conv, IntConverter) else ARGUMENTS.get(name, "x")
            for name, conv in self.pattern.pattern.converters.items()
        }
        return reverse(self.name, kwargs=kwargs)


def api_routes() -> list[Route]:
    def walk(patterns: list, prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p

    return sorted((Route(p.name, p) for path, p in walk(get_resolver().url_patterns, "")
                   if path.startswith("api/v1/")), key=lambda r: r.name)


ROUTES = api_routes()


def _handled(route: Route, method: str) -> bool:
    view = route.view()
    if hasattr(view, "get") and not hasattr(view, "head"):
        view.head = view.get  # as Django's View.setup() does for every request
    return handles(view, method)


def _snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (last_used_at aside: authentication keeps it, once a minute)."""
    state = {}
    for model in apps.get_models():
        fields = [f.attname for f in model._meta.concrete_fields
                  if not (model is ApiKey and f.name == "last_used_at")]
        state[model._meta.label] = sorted(map(repr, model._base_manager.values_list(*fields)))
    return state


def _send(client: APIClient, method: str, url: str):
    if method in SAFE:
        return client.generic(method, f"{url}?subject={SUBJECT}", headers={"Sec-GPC": "1"})
    return client.generic(method, url, data=b"{}", content_type="application/json",
                          headers={"Sec-GPC": "1"})


@pytest.fixture
def clients(tenant) -> dict[str, APIClient]:
    """One client per scope, each key holding that scope alone."""
    built = {}
    for label in LABELS:
        _, raw = create_api_key(tenant=tenant, name=label, scopes=[label])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        built[label] = client
    return built


def test_the_walk_covers_the_api():
    names = {r.name for r in ROUTES}
    assert {"api-root", "subject-consent", "recommendations", "event-ingest"} <= names
    assert all(any(_handled(r, m) for m in ("GET", "POST", "PUT", "DELETE")) for r in ROUTES)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_every_method_needs_its_scope_and_safe_methods_never_write(route, clients, tenant):
    url = route.url()
    outcomes: dict[tuple[str, str], int] = {}
    options_bodies = set()
    for label, client in clients.items():
        before = _snapshot()
        for method in SAFE:
            response = _send(client, method, url)
            outcomes[method, label] = response.status_code
            if method == "OPTIONS":
                options_bodies.add(response.content)
        assert _snapshot() == before, f"{label}: a safe method on {route.name} wrote"
        for method in METHODS:
            if method not in SAFE:
                outcomes[method, label] = _send(client, method, url).status_code

    for method in METHODS:
        if method == "OPTIONS":
            assert {outcomes[method, label] for label in LABELS} == {200}
            continue
        if not _handled(route, method):
            assert {outcomes[method, label] for label in LABELS} == {405}, method
            continue
        opened = {label for label in LABELS if outcomes[method, label] not in (401, 403, 405)}
        refused = {label: outcomes[method, label] for label in LABELS if label not in opened}
        assert set(refused.values()) <= {403}, (method, refused)
        declared = required_scope_for(route.view(), method)
        if route.name in OPEN_ROUTES:
            assert declared == ANY_VALID_KEY
            assert opened == set(LABELS), method
        else:
            assert opened == {declared}, (method, opened)
        if method == "HEAD":
            assert opened == {label for label in LABELS
                              if outcomes["GET", label] not in (401, 403, 405)}
    assert len(options_bodies) == 1, "OPTIONS answers differ between keys"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_every_method_without_a_key_is_401(route, db):
    client = APIClient()
    for method in METHODS:
        assert _send(client, method, route.url()).status_code == 401, method


def test_a_view_that_declares_no_scope_is_refused(rf, tenant):
    class Undeclared(TenantApi):
        def get(self, request: Any) -> Response:
            return Response({"ran": True})

    class Open(Undeclared):
        required_scope = ANY_VALID_KEY

    api_key, _ = make_api_key(tenant, list(Scope.values))

    def call(view: type[TenantApi]) -> Any:
        request = rf.get("/")
        force_authenticate(request, user=ApiKeyPrincipal(api_key), token=api_key)
        response = view.as_view()(request)
        response.render()
        return response

    refused = call(Undeclared)
    assert refused.status_code == 403
    assert refused.data["error"]["code"] == "missing_scope"
    assert call(Open).data == {"ran": True}


def test_a_read_only_key_cannot_record_a_gpc_opt_out_with_head_or_get(tenant, make_client):
    """The reported case: HEAD with ``recommendations:read`` recorded an opt-out."""
    url = reverse("subject-consent", kwargs={"subject": SUBJECT})
    gpc = {"Sec-GPC": "1"}
    recommender = make_client(tenant, [Scope.RECOMMENDATIONS_READ])
    reader = make_client(tenant, [Scope.CONSENT_READ])
    assert recommender.head(url, headers=gpc).status_code == 403
    assert reader.head(url, headers=gpc).status_code == 200
    assert reader.get(url, headers=gpc).json()["flags"]["gpc"] is False
    assert not ConsentRecord.objects.for_tenant(tenant).exists()
    writer = make_client(tenant, [Scope.CONSENT_READ, Scope.CONSENT_WRITE])
    assert writer.head(url, headers=gpc).status_code == 200  # HEAD is GET: it may apply GPC
    assert ConsentRecord.objects.for_tenant(tenant).filter(source="gpc").exists()
    assert writer.get(url, headers=gpc).json()["flags"]["gpc"] is True
