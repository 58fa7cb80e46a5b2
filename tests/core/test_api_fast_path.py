"""The API's routes run without the site's session, CSRF, authentication and messages
middleware; the admin and the privacy portal keep every one of them (issue 18; README
"Serving at web speed"). The figures are bench/serve.py's; these tests only look at what
each request went through."""

from __future__ import annotations

import pytest
from django.contrib.admin.checks import check_dependencies
from django.test import Client

from apps.tenants.authentication import ApiKeyPrincipal
from tests.factories.tenants import make_api_key

CSRF_SECRET = "a" * 32  # a well-formed CSRF cookie: the middleware would read it


def _site_state(request) -> dict[str, bool]:
    """Traces each site middleware leaves on the request it processed."""
    return {
        "session": hasattr(request, "session"),  # SessionMiddleware
        "auser": hasattr(request, "auser"),  # AuthenticationMiddleware
        "messages": hasattr(request, "_messages"),  # MessageMiddleware
        "csrf": "CSRF_COOKIE" in request.META,  # CsrfViewMiddleware read the cookie
    }


def _client_with_cookies(**headers) -> Client:
    client = Client(enforce_csrf_checks=True, **headers)
    client.cookies["sessionid"] = "s" * 32
    client.cookies["csrftoken"] = CSRF_SECRET
    return client


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/api/v1/recommendations?subject=reader-1", None),
    ("post", "/api/v1/recommendations/session", {"recent_items": ["book-1"]}),
    ("get", "/api/v1/items/book-1/similar", None),
    ("get", "/api/v1/", None),
    ("get", "/api/v1/no-such-route", None),
])
def test_api_requests_skip_session_csrf_auth_and_messages(tenant, method, path, body):
    _, raw_key = make_api_key(tenant, ["recommendations:read"])
    client = _client_with_cookies(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    if method == "post":  # no CSRF token, a CSRF cookie and a session cookie: no 403
        response = client.post(path, body, content_type="application/json")
    else:
        response = client.get(path)
    assert response.status_code in (200, 404), response.content
    request = response.wsgi_request
    assert _site_state(request) == {"session": False, "auser": False, "messages": False,
                                    "csrf": False}
    assert not response.cookies  # no session or CSRF cookie set, rotated or deleted
    assert "Cookie" not in response.get("Vary", "")
    if response.status_code == 200:
        assert isinstance(request.user, ApiKeyPrincipal)  # DRF's principal, not a session user


def test_a_logged_in_admin_session_does_not_authenticate_api_requests(tenant, admin_user):
    client = Client()
    client.force_login(admin_user)
    response = client.get("/api/v1/recommendations", {"subject": "reader-1"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert not hasattr(response.wsgi_request, "session")


@pytest.mark.parametrize("path", ["/admin/login/", "/privacy/{slug}/", "/api/docs/"])
def test_the_admin_portal_and_docs_keep_session_csrf_auth_and_messages(tenant, path):
    response = _client_with_cookies().get(path.format(slug=tenant.slug))
    assert response.status_code == 200
    assert _site_state(response.wsgi_request) == {"session": True, "auser": True,
                                                  "messages": True, "csrf": True}
    assert response.wsgi_request.META["CSRF_COOKIE"] == CSRF_SECRET


@pytest.mark.parametrize("path", ["/admin/login/", "/privacy/{slug}/request"])
def test_the_admin_and_the_portal_still_enforce_csrf(tenant, path):
    response = _client_with_cookies().post(path.format(slug=tenant.slug), {"x": "y"})
    assert response.status_code == 403  # no CSRF token in the form


def test_the_admin_still_logs_in_through_its_session(admin_user):
    client = Client()
    client.force_login(admin_user)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert response.wsgi_request.user == admin_user


def test_the_admin_checks_still_find_the_middleware_it_needs():
    assert check_dependencies() == []


@pytest.mark.parametrize(("accept", "status"), [
    (None, 200), ("*/*", 200), ("application/json", 200), ("application/*", 200),
    ("text/html, application/json;q=0.9", 200), ("application/xml", 406), ("text/html", 406),
])
def test_content_negotiation_still_answers_as_drf_does(tenant, make_client, accept, status):
    client = make_client(tenant, ["recommendations:read"])
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = client.get("/api/v1/recommendations", {"subject": "reader-1"}, **headers)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    if status == 406:
        assert response.json()["error"]["code"] == "not_acceptable"


def test_the_deploy_check_still_wants_csrf_middleware(settings):
    from apps.core.site_middleware import check_csrf_middleware

    assert check_csrf_middleware() == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Csrf" not in m]
    assert [m.id for m in check_csrf_middleware()] == ["core.W003"]
