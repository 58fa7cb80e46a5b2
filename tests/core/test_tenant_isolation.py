"""Tenant A's key can never read, change or detect tenant B's data, on every API route."""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

import tests
from tests.isolation import CASES, IsolationCase, Probe


def _load_cases() -> None:
    for module in pkgutil.iter_modules(tests.__path__):
        if module.ispkg:
            try:
                importlib.import_module(f"tests.{module.name}.isolation_cases")
            except ModuleNotFoundError as exc:
                if exc.name != f"tests.{module.name}.isolation_cases":
                    raise


def _api_routes() -> Iterator[tuple[str, URLPattern]]:
    def walk(patterns: list, prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p

    yield from walk(get_resolver().url_patterns, "")


def api_route_names() -> list[str]:
    return sorted({p.name for route, p in _api_routes() if route.startswith("api/v1/")})


def _methods(name: str) -> list[str]:
    view = next(p for _, p in _api_routes() if p.name == name).callback
    cls = getattr(view, "view_class", None) or getattr(view, "cls", None)
    allowed = ["get", "post", "put", "patch", "delete"]
    return [m for m in allowed if cls is not None and hasattr(cls, m)]


_load_cases()


def _case_keys() -> list[str]:
    """One key per route and method: ``name`` for GET, ``name:method`` for the others."""
    return [name if method == "get" else f"{name}:{method}"
            for name in api_route_names() for method in _methods(name)]


def test_every_api_route_and_method_has_an_isolation_case():
    missing = [k for k in _case_keys() if k not in CASES]
    assert not missing, f"add cases in tests/<app>/isolation_cases.py for: {missing}"


def _send(client, name: str, probe: Probe):
    url = reverse(name, kwargs=probe.kwargs)
    call = getattr(client, probe.method)
    kwargs = {"format": "json", "headers": probe.headers}
    if probe.method == "get":
        return call(url, data=probe.query, **kwargs)
    if probe.query:
        from urllib.parse import urlencode

        url = f"{url}?{urlencode(probe.query, doseq=True)}"
    return call(url, data=probe.body, **kwargs)


def _scrubbed(response, scrub: tuple[str, ...]) -> tuple[int, str]:
    body = response.content.decode()
    for value in scrub:
        body = body.replace(value, "<id>")
    return response.status_code, body


@pytest.mark.parametrize("key", _case_keys())
def test_a_key_of_one_tenant_learns_nothing_about_another(key, tenant, other_tenant, make_client):
    attacker = make_client(tenant)
    case: IsolationCase = CASES[key](other_tenant)
    name = key.split(":")[0]
    response = _send(attacker, name, case.target)
    assert response.status_code < 500
    body = response.content.decode()
    for marker in case.markers:
        assert marker not in body, f"{key}: tenant B's '{marker}' visible to tenant A"
    if case.missing is not None:
        scrub = case.scrub or tuple(str(v) for p in (case.target, case.missing)
                                    for v in p.kwargs.values())
        baseline = _send(attacker, name, case.missing)
        assert _scrubbed(response, scrub) == _scrubbed(baseline, scrub), (
            f"{key}: answer for tenant B's object differs from a missing one"
        )
    if case.intact is not None:
        assert case.intact(), f"{key}: tenant A changed tenant B's object"


def test_the_probe_reaches_the_owners_object_with_the_owners_key(tenant, make_client):
    """Sanity check of the harness: the same probe succeeds for the owner."""
    case = CASES["api-key-detail"](tenant)
    response = _send(make_client(tenant), "api-key-detail", case.target)
    assert response.status_code == 200
    assert json.loads(response.content)["prefix"] in case.markers
