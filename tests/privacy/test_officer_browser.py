"""The privacy officer's day in a real browser (Debian's chromium + chromedriver, selenium):

* an owner logs in, approves a request held in ``awaiting_approval`` and watches it
  complete, the erasure run by the real worker (PostgreSQL, a broker: the integration run);
* the request queue is readable at 1280 px: "days left" shows without scrolling sideways;
* axe-core (vendored: tests/browser/vendor/axe.min.js) finds no serious or critical violation on
  the queue and on a request's page.

Skipped like the portal's browser tests when chromium is missing, unless
``DISCREET_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.events.models import Event
from apps.privacy import config
from apps.privacy.models import PrivacyRequest
from apps.tenants.models import Membership
from tests.factories.privacy import make_request, seed_subject
from tests.factories.tenants import MembershipFactory
from tests.privacy.test_browser import _browser, _by

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[1] / "browser" / "vendor" / "axe.min.js"
LIST = "/admin/privacy/privacyrequest/"


@pytest.fixture
def wide_browser() -> Iterator:
    driver = _browser(javascript=True)
    driver.set_window_size(1280, 900)
    try:
        yield driver
    finally:
        driver.quit()


def _hold(tenant, *kinds: str, steps: dict | None = None) -> None:
    tenant.settings = {**tenant.settings, config.APPROVAL_KINDS_SETTING: list(kinds),
                       config.MANUAL_STEPS_SETTING: steps or {}}
    tenant.save()


def _log_in(driver, live_server, tenant) -> None:
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.OWNER)
    driver.get(f"{live_server.url}/admin/login/?next={LIST}")
    driver.find_element(_by("ID"), "id_username").send_keys(membership.user.username)
    driver.find_element(_by("ID"), "id_password").send_keys("pw")
    _click_and_wait(driver, "input[type=submit], button[type=submit]")
    assert "/login/" not in driver.current_url


def _click_and_wait(driver, selector: str) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(_by("TAG_NAME"), "html")
    driver.find_element(_by("CSS_SELECTOR"), selector).click()
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(
        expected_conditions.staleness_of(page))


def _axe_serious(driver) -> list[str]:
    """Serious and critical axe-core violations of the page as loaded."""
    driver.execute_script(AXE.read_text())
    driver.set_script_timeout(60)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => [v.id, v.impact, v.nodes.length,"
        " v.nodes.slice(0, 3).map(n => n.target.join(' '))])))"
        ".catch(e => done([['axe-error', 'critical', 0, [String(e)]]]));")
    return [f"{rule} ({impact}, {n} nodes: {targets})"
            for rule, impact, n, targets in result if impact in {"serious", "critical"}]


def _status(pr: PrivacyRequest) -> str:
    return PrivacyRequest.objects.for_tenant(pr.tenant_id).get(pk=pr.pk).status


def test_an_owner_approves_a_held_erasure_and_watches_it_complete(
        wide_browser, live_server, live_worker, tenant):
    driver = wide_browser
    _hold(tenant, "erasure")
    key = seed_subject(tenant, "alice@example.com", events=4)
    pr = make_request(tenant, "erasure", "alice@example.com")  # commits: held, no job
    assert _status(pr) == "awaiting_approval"
    _log_in(driver, live_server, tenant)
    driver.get(f"{live_server.url}{LIST}")
    row = driver.find_element(_by("XPATH"),
                              f"//tr[.//a[normalize-space()='{pr.reference[:8]}']]")
    assert "Awaiting approval" in row.text
    row.find_element(_by("LINK_TEXT"), pr.reference[:8]).click()
    _click_and_wait(driver, "#approve")
    assert "Approved; fulfilment started." in driver.page_source
    deadline = time.monotonic() + 120
    while "Completed" not in _readonly_status(driver):  # the worker erases meanwhile
        assert time.monotonic() < deadline, live_worker.log()[-3000:]
        time.sleep(1)
        driver.refresh()
    assert _status(pr) == "completed"
    assert not Event.objects.for_tenant(tenant).filter(subject_key=key).exists()


def _readonly_status(driver) -> str:
    """The read-only Status field's text (found by its label: the theme's rows carry no
    ``field-status`` class)."""
    cells = driver.find_elements(_by("XPATH"), "//label[normalize-space()='Status']"
                                 "/ancestor::div[contains(@class, 'field-line')][1]"
                                 "//div[contains(@class, 'readonly')]")
    return " ".join(c.get_attribute("textContent") or "" for c in cells)


def test_the_queue_fits_1280_px_and_has_no_serious_accessibility_violations(
        wide_browser, live_server, tenant, django_capture_on_commit_callbacks):
    driver = wide_browser
    _hold(tenant, "access", steps={"access": ["Check the order system"]})
    with django_capture_on_commit_callbacks(execute=True):
        held = make_request(tenant, "access", "alice@example.com", channel="portal")
        make_request(tenant, "erasure", "bob@example.com", channel="portal", verified=False)
    _log_in(driver, live_server, tenant)
    driver.get(f"{live_server.url}{LIST}")
    assert driver.execute_script("return window.innerWidth") >= 1200
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the queue scrolls sideways by {overflow} px"
    header = driver.find_element(_by("CSS_SELECTOR"), "th.column-days_left")
    right = driver.execute_script("return arguments[0].getBoundingClientRect().right", header)
    assert right <= driver.execute_script("return window.innerWidth")
    assert _axe_serious(driver) == []
    driver.get(f"{live_server.url}{LIST}{held.pk}/change/")
    assert "Check the order system" in driver.page_source
    assert _axe_serious(driver) == []
