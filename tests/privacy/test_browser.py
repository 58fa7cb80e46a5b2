"""The portal in a real browser (Debian's chromium + chromedriver, driven by selenium).

* The whole erasure journey with JavaScript switched off: the pages need none.
* Keyboard: the focus order follows the page, and every control has a label.
* Contrast: text, links, buttons and errors meet WCAG AA (4.5:1) as rendered.

The browser, its fixtures and the waits are ``tests/browser/helpers.py``'s: skipped (with the
reason) when /usr/bin/chromium is missing, unless ``DISCREET_REQUIRE_BROWSER=1`` (CI), which
turns the skip into a failure.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail

from apps.privacy.models import PrivacyRequest
from apps.privacy.services import sign_portal_token
from tests.browser.helpers import by, submit
from tests.db_search import columns_containing
from tests.factories.privacy import seed_subject

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EXEMPT = {"privacy_privacyrequest.subject_key", "privacy_erasuretombstone.subject_key"}


def test_an_erasure_through_the_portal_without_javascript(no_js_browser, live_server, tenant):
    driver = no_js_browser
    key = seed_subject(tenant, "alice@example.com", events=3)
    driver.get(f"{live_server.url}/privacy/{tenant.slug}/")
    assert tenant.name in driver.title
    # Choosing by clicking the label proves the label is tied to its radio button.
    driver.find_element(by("CSS_SELECTOR"), "label[for='kind-erasure']").click()
    assert driver.find_element(by("ID"), "kind-erasure").is_selected()
    driver.find_element(by("CSS_SELECTOR"), "label[for='id_identifier']").click()
    driver.switch_to.active_element.send_keys("alice@example.com")
    submit(driver)
    assert driver.find_element(by("TAG_NAME"), "h1").text == "Check your email"

    link = re.search(r"(http://\S+/verify\?\S+)", mail.outbox[0].body).group(1)
    driver.get(link.replace("http://testserver", live_server.url))
    submit(driver)
    assert driver.find_element(by("ID"), "status").text == "Completed"
    assert "Erasure receipt" in driver.page_source
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert pr.status == "completed"
    assert set(columns_containing(key)) <= EXEMPT


def test_a_verified_subject_changes_choices_without_javascript(no_js_browser, live_server,
                                                               tenant):
    driver = no_js_browser
    seed_subject(tenant, "user-42", events=2)
    token = sign_portal_token(tenant=tenant, subject="user-42")
    driver.get(f"{live_server.url}/privacy/{tenant.slug}/start?token={token}")
    submit(driver, "My data", "LINK_TEXT")
    assert "interaction events" in driver.page_source
    submit(driver, "My choices", "LINK_TEXT")
    analytics = driver.find_element(by("ID"), "purpose-analytics")
    assert analytics.is_selected()
    driver.find_element(by("CSS_SELECTOR"), "label[for='purpose-analytics']").click()
    submit(driver)
    assert "Your choices are saved." in driver.page_source
    assert not driver.find_element(by("ID"), "purpose-analytics").is_selected()


def _focus_path(driver, steps: int) -> list[str]:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    seen = []
    for _ in range(steps):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        element = driver.switch_to.active_element
        seen.append(element.get_attribute("id") or element.text.strip()
                    or element.get_attribute("name") or element.tag_name)
    return seen


def test_the_focus_order_follows_the_page_and_every_control_has_a_label(no_js_browser,
                                                                         live_server, tenant):
    driver = no_js_browser
    driver.get(f"{live_server.url}/privacy/{tenant.slug}/")
    path = _focus_path(driver, 7)
    assert path[:7] == ["Skip to content", "Make a request", "kind-first", "regime-first",
                        "id_identifier", "Send request", path[6]]
    for control in driver.find_elements(by("CSS_SELECTOR"), "input:not([type=hidden])"):
        control_id = control.get_attribute("id")
        assert control_id, control.get_attribute("outerHTML")
        assert driver.find_elements(by("CSS_SELECTOR"), f"label[for='{control_id}']")
    assert driver.find_element(by("TAG_NAME"), "html").get_attribute("lang") == "en"


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(fg: str, bg: str) -> float:
    def parse(css: str) -> tuple[float, float, float]:
        return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])  # type: ignore[return-value]

    light, dark = sorted((_luminance(parse(fg)), _luminance(parse(bg))), reverse=True)
    return (light + 0.05) / (dark + 0.05)


COLOURS_JS = """
const out = [];
for (const el of document.querySelectorAll(arguments[0])) {
  let bgEl = el, bg = 'rgba(0, 0, 0, 0)';
  while (bgEl) {
    bg = getComputedStyle(bgEl).backgroundColor;
    if (bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') break;
    bgEl = bgEl.parentElement;
  }
  out.push([el.tagName + '.' + el.className, getComputedStyle(el).color, bg || 'rgb(255,255,255)']);
}
return out;
"""


def test_text_links_buttons_and_errors_meet_wcag_aa_contrast(browser, live_server, tenant):
    browser.get(f"{live_server.url}/privacy/{tenant.slug}/")
    submit(browser)  # an empty form: the page with its error messages
    checked = 0
    for selector in ("body", "h1", "label", ".hint", "a", "button", ".error", "legend",
                     "footer p"):
        for name, fg, bg in browser.execute_script(COLOURS_JS, selector):
            ratio = _contrast(fg, bg)
            assert ratio >= 4.5, f"{selector} {name}: {fg} on {bg} is {ratio:.2f}:1"
            checked += 1
    assert checked > 20
