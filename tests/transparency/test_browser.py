"""The transparency page in a real browser (Debian's chromium + chromedriver, as in
tests/privacy/test_browser.py): for the demo tenant it names the serving algorithm and the
retention periods that the admin shows, it needs no JavaScript, and axe-core (vendored,
``tests/browser/vendor/axe.min.js``, axe-core 4.14.1, MPL-2.0) finds no accessibility
violation on it nor on its 404 page. The browser, axe and the admin's login are
``tests/browser/helpers.py``'s."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from apps.modeling.selectors import get_active_model_version
from apps.tenants.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG
from apps.tenants.models import Tenant
from apps.tenants.services import create_tenant
from tests.browser.helpers import admin_log_in, axe_violations, wait
from tests.factories.modeling import configure

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo() -> Tenant:
    """The demo tenant as ``make run`` seeds it (``seed_demo``: owner login, catalog,
    300 subjects, their events, a first model trained by the eager worker), with the fast
    test settings so that the first training takes seconds."""
    tenant = create_tenant(slug=DEMO_SLUG, name="Demo Books & Goods", contact_email=DEMO_EMAIL)
    configure(tenant)
    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    return Tenant.objects.get(slug=DEMO_SLUG)


def _admin_periods(driver, base: str) -> dict[str, str]:
    """``{category: period}`` as the admin's retention-policy list shows them."""
    from selenium.webdriver.common.by import By

    admin_log_in(driver, base, DEMO_EMAIL, DEMO_PASSWORD)
    driver.get(f"{base}/admin/retention/retentionpolicy/")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"))
    periods = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"):
        category = row.find_element(By.CSS_SELECTOR, ".field-category").text.strip()
        periods[category] = row.find_element(By.CSS_SELECTOR, ".field-period").text.strip()
    return periods


def test_the_demo_page_names_the_algorithm_and_the_admins_retention_periods(
        browser, live_server, demo):
    from selenium.webdriver.common.by import By

    version = get_active_model_version(tenant=demo)
    admin = _admin_periods(browser, live_server.url)
    assert "events" in admin
    assert len(admin) >= 6

    browser.get(f"{live_server.url}/privacy/{DEMO_SLUG}/how-recommendations-work")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang").startswith("en")
    served = browser.find_element(By.CSS_SELECTOR, "#serving-algorithm [data-algorithm]")
    assert served.get_attribute("data-algorithm") == version.algorithm
    assert served.text == {"als": "ALS (implicit)", "bm25": "BM25 item-kNN (implicit)",
                           "ease": "EASE (closed-form item-item)"}[version.algorithm]
    compared = 0
    for category, period in admin.items():
        shown = browser.find_element(
            By.CSS_SELECTOR, f"#retention-periods tr[data-category='{category}'] td").text
        figure = re.search(r"(\d+) (days|hours)", period)
        if figure is None:  # a count rule: the page says the rule
            assert "count rule" in period
            assert "artifact" in shown
            continue
        assert f"{figure.group(1)} {figure.group(2)}" in shown, (category, period, shown)
        compared += 1
    assert compared >= 6

    assert axe_violations(browser) == []
    browser.get(f"{live_server.url}/privacy/no-such-tenant/how-recommendations-work")
    assert axe_violations(browser) == []
    # The harness sees a violation when there is one (an image without a text alternative).
    browser.execute_script("document.querySelector('main').append(document.createElement('img'))")
    assert any(v.startswith("image-alt") for v in axe_violations(browser))


def test_the_page_needs_no_javascript(no_js_browser, live_server, tenant):
    from selenium.webdriver.common.by import By

    no_js_browser.get(f"{live_server.url}/privacy/{tenant.slug}/how-recommendations-work")
    assert tenant.name in no_js_browser.title
    rows = no_js_browser.find_elements(By.CSS_SELECTOR, "#signal-weights tbody tr")
    assert {r.get_attribute("data-signal") for r in rows} >= {"view", "purchase"}
    link = no_js_browser.find_element(By.PARTIAL_LINK_TEXT, "personalization level")
    assert link.get_attribute("href").endswith(f"/privacy/{tenant.slug}/preferences")
