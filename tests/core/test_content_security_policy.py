"""Every page carries a Content-Security-Policy that allows no inline or foreign script
(issue 16, item 8; README "Security"), and the pages still work under it: the admin, the
portal and the API docs render in a real browser without a single violation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from tests.factories.tenants import MembershipFactory


def _directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize("path", [
    "/admin/login/", "/privacy/{slug}/", "/privacy/{slug}/how-recommendations-work",
    "/api/docs/", "/api/schema/", "/healthz",
    "/api/v1/events", "/no-such-page"])
def test_every_response_has_a_policy_without_inline_script(tenant, path):
    response = Client().get(path.format(slug=tenant.slug))
    policy = _directives(response)
    # The admin's theme evaluates Alpine.js attributes: 'unsafe-eval' there, and only there
    # (apps/console/middleware.py); never an inline or a foreign script.
    expected = ["'self'", "'unsafe-eval'"] if path.startswith("/admin/") else ["'self'"]
    assert policy["script-src"] == expected
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'self'"]


def test_the_policy_is_built_once_from_the_settings_and_follows_them(tenant):
    """apps/core/csp_policy.py reuses the policy text: the same text django-csp builds, and
    a settings change (tests, a reload) is seen by the next response."""
    from csp.utils import build_policy
    from django.test import override_settings

    from apps.core import csp_policy

    api = Client().get("/api/v1/events")
    assert api["Content-Security-Policy"] == build_policy()
    assert csp_policy._built is not None
    assert Client().get("/healthz")["Content-Security-Policy"] == build_policy()
    replaced = {"DIRECTIVES": {"default-src": ["'none'"]}}
    with override_settings(CONTENT_SECURITY_POLICY=replaced,
                           CONTENT_SECURITY_POLICY_REPORT_ONLY={
                               "DIRECTIVES": {"img-src": ["'self'"]},
                               "EXCLUDE_URL_PREFIXES": ["/healthz"]}):
        response = Client().get("/api/v1/events")
        assert response["Content-Security-Policy"] == "default-src 'none'"
        assert response["Content-Security-Policy-Report-Only"] == build_policy(report_only=True)
        assert "img-src 'self'" in response["Content-Security-Policy-Report-Only"]
        assert "Content-Security-Policy-Report-Only" not in Client().get("/healthz")
    response = Client().get("/api/v1/events")
    assert response["Content-Security-Policy"] == build_policy()
    assert "Content-Security-Policy-Report-Only" not in response
    # The admin's amended policy is built per response, as django-csp does.
    assert "'unsafe-eval'" in Client().get("/admin/login/")["Content-Security-Policy"]


def test_the_api_docs_load_their_start_up_script_from_a_file(db):
    client = Client()
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")


# --- In a real browser ---------------------------------------------------------------------

@pytest.fixture
def logging_browser() -> Iterator:
    from tests.browser.helpers import open_chromium

    driver = open_chromium(javascript=True)
    try:
        yield driver
    finally:
        driver.quit()


def _violations(driver) -> list[str]:
    """CSP refusals the page reported (Chromium logs each one to the console)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"]
            or "Refused to" in entry["message"]]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_portal_and_docs_work_under_the_policy(logging_browser, live_server, tenant):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from apps.tenants.models import Membership
    from tests.browser.helpers import admin_log_in

    driver = logging_browser
    wait = WebDriverWait(driver, 20)

    # The API docs: Swagger UI runs (its script comes from files) and shows the schema.
    driver.get(f"{live_server.url}/api/docs/")
    title = wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, ".swagger-ui .info .title")))
    assert "Discreet API" in title.text
    wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, ".swagger-ui .opblock")))
    assert _violations(driver) == []

    # The portal.
    driver.get(f"{live_server.url}/privacy/{tenant.slug}/")
    assert driver.find_elements(By.TAG_NAME, "form")
    assert _violations(driver) == []

    # The admin: log in through the form, open a change list with filters and a change form
    # (its scripts: the filter sidebar, the related-object widgets).
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.OWNER)
    membership.user.set_password("a-long-test-password")
    membership.user.save()
    admin_log_in(driver, live_server.url, membership.user.username, "a-long-test-password")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "nav-sidebar-inner")))
    for page in ("/admin/", "/admin/consent/consentrecord/", "/admin/tenants/apikey/add/"):
        driver.get(f"{live_server.url}{page}")
        assert driver.find_elements(By.ID, "content"), page
        assert _violations(driver) == [], page
    # The theme's stylesheet applied and its scripts ran: the page is shown (Alpine.js
    # removes x-cloak, which hides it until then).
    assert driver.execute_script("return document.documentElement.hasAttribute('x-cloak')") \
        is False
    assert driver.find_element(By.ID, "content").is_displayed()
    # And the watch works: an injected inline script is refused, and reported.
    driver.execute_script("const s = document.createElement('script');"
                          "s.textContent = 'window.injected = 1'; document.body.append(s);")
    assert driver.execute_script("return window.injected") is None
    assert _violations(driver)
