"""The privacy officer's day in a real browser (Debian's chromium + chromedriver, selenium):

* an owner logs in, approves a request held in ``awaiting_approval`` and watches it
  complete, the erasure run by the real worker (PostgreSQL, a broker: the integration run);
* the request queue is readable at 1280 px: "days left" shows without scrolling sideways;
* axe-core (vendored: tests/browser/vendor/axe.min.js) finds no serious or critical violation on
  the queue and on a request's page.

The browser, the admin's login and axe are ``tests/browser/helpers.py``'s (skipped when
chromium is missing, unless ``DISCREET_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import time

import pytest

from apps.events.models import Event
from apps.privacy import config
from apps.privacy.models import PrivacyRequest
from apps.tenants.models import Membership
from tests.browser.helpers import SERIOUS, admin_log_in, axe_violations, by, submit
from tests.factories.privacy import make_request, seed_subject
from tests.factories.tenants import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIST = "/admin/privacy/privacyrequest/"


@pytest.fixture
def wide_browser(open_browser):
    return open_browser(javascript=True, size=(1280, 900))


def _hold(tenant, *kinds: str, steps: dict | None = None) -> None:
    tenant.settings = {**tenant.settings, config.APPROVAL_KINDS_SETTING: list(kinds),
                       config.MANUAL_STEPS_SETTING: steps or {}}
    tenant.save()


def _log_in(driver, live_server, tenant) -> None:
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.OWNER)
    admin_log_in(driver, live_server.url, membership.user.username, "pw", next_path=LIST)


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
    row = driver.find_element(by("XPATH"),
                              f"//tr[.//a[normalize-space()='{pr.reference[:8]}']]")
    assert "Awaiting approval" in row.text
    row.find_element(by("LINK_TEXT"), pr.reference[:8]).click()
    submit(driver, "#approve", loaded="")
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
    cells = driver.find_elements(by("XPATH"), "//label[normalize-space()='Status']"
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
    header = driver.find_element(by("CSS_SELECTOR"), "th.column-days_left")
    right = driver.execute_script("return arguments[0].getBoundingClientRect().right", header)
    assert right <= driver.execute_script("return window.innerWidth")
    assert axe_violations(driver, impacts=SERIOUS) == []
    driver.get(f"{live_server.url}{LIST}{held.pk}/change/")
    assert "Check the order system" in driver.page_source
    assert axe_violations(driver, impacts=SERIOUS) == []
