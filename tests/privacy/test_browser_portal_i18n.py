"""Issue 19 in a real browser (Debian's chromium + chromedriver, as in test_browser.py):

* "why am I seeing this", without JavaScript: a verified subject removes an interaction and
  the next recommendation no longer cites it;
* a browser that asks for German (``Accept-Language: de``) gets the portal in German, and the
  switcher changes the language without JavaScript;
* axe-core (tests/browser/vendor/axe.min.js, MPL-2.0) finds no violation on the portal's
  pages in any of its languages.

The browser fixtures (``open_browser``), the waits and axe are ``tests/browser/helpers.py``'s.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from apps.events.models import Event
from apps.modeling.services import serving, train_model
from apps.privacy.i18n import PORTAL_LANGUAGES
from apps.privacy.services import sign_portal_token
from tests.browser.helpers import axe_run, by, submit
from tests.factories.modeling import fan_dataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SUBJECT = "browser-why-subject"


@pytest.fixture
def fan(tenant):
    """A subject whose one purchase of ``liked`` is cited in their recommendations."""
    serving.clear_cache()
    _planted, key, liked = fan_dataset(tenant, SUBJECT)
    yield tenant, key, liked
    serving.clear_cache()


def _cited(driver) -> set[str]:
    return {el.get_attribute("data-because")
            for el in driver.find_elements(by("CSS_SELECTOR"), "[data-because]")}


def _sign_in(driver, live_server, tenant) -> str:
    base = f"{live_server.url}/privacy/{tenant.slug}/"
    driver.get(base + "start?token=" + sign_portal_token(tenant=tenant, subject=SUBJECT))
    return base


def test_removing_an_interaction_under_why_am_i_seeing_this_without_javascript(
        open_browser, live_server, fan):
    tenant, key, liked = fan
    driver = open_browser(javascript=False)
    _sign_in(driver, live_server, tenant)
    submit(driver, "Why am I seeing this?", "LINK_TEXT")
    assert driver.find_element(by("TAG_NAME"), "h1").text == "Why am I seeing this?"
    assert liked in _cited(driver)
    source = driver.find_element(by("CSS_SELECTOR"), f"[data-because='{liked}']")
    interaction = source.find_element(by("CSS_SELECTOR"), ".events li")
    assert "purchase" in interaction.text
    submit(driver, f"[data-because='{liked}'] .events button[type=submit]")

    status = driver.find_element(by("CSS_SELECTOR"), "[role=status]")
    assert status.text.startswith("Removed.")
    assert not Event.objects.for_tenant(tenant).filter(subject_key=key,
                                                       item__external_id=liked).exists()
    # The next recommendation: the model no longer holds the subject until it is retrained...
    assert liked not in _cited(driver)
    assert driver.find_elements(by("ID"), "not-personalized")
    # ...and once retrained, it cites what remains only.
    train_model(tenant=tenant)
    driver.refresh()
    assert _cited(driver)
    assert liked not in _cited(driver)


def test_the_portal_renders_in_german_for_accept_language_de(open_browser, live_server,
                                                             tenant):
    driver = open_browser(javascript=False, language="de")
    base = f"{live_server.url}/privacy/{tenant.slug}/"
    driver.get(base)
    assert driver.find_element(by("TAG_NAME"), "html").get_attribute("lang") == "de"
    assert driver.find_element(by("TAG_NAME"), "h1").text == f"Ihre Daten bei {tenant.name}"
    assert driver.find_element(by("CSS_SELECTOR"), "label[for='kind-erasure']").text \
        .startswith("Meine Daten löschen")
    # The switcher, without JavaScript: choose French and submit.
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(by("ID"), "language")).select_by_value("fr")
    submit(driver, "footer form.languages button[type=submit]")
    assert driver.current_url == base
    assert driver.find_element(by("TAG_NAME"), "html").get_attribute("lang") == "fr"
    assert driver.find_element(by("TAG_NAME"), "h1").text == f"Vos données chez {tenant.name}"


def test_axe_finds_no_violation_on_the_portal_pages_in_every_language(open_browser,
                                                                      live_server, fan):
    tenant, _key, _ = fan
    driver = open_browser(javascript=True)
    driver.set_script_timeout(60)
    base = _sign_in(driver, live_server, tenant)
    path = f"/privacy/{tenant.slug}/"
    # A rectification, for a status page with "what changed".
    driver.get(base + "my-data")
    driver.find_element(by("CSS_SELECTOR"), "label[for='event-1']").click()
    submit(driver)
    status = driver.current_url.removeprefix(live_server.url)
    pages = ["", "why", "my-data", "preferences", status.removeprefix(path),
             "request/sent?what=verify", "verify?r=x&token=y"]
    checked = 0
    for code, _name in PORTAL_LANGUAGES:
        for page in pages:
            driver.get(f"{base}language?language={code}&next={quote(path + page)}")
            assert driver.find_element(by("TAG_NAME"), "html").get_attribute("lang") == code
            violations = axe_run(driver)
            assert violations == [], (code, page, violations)
            checked += 1
    assert checked == len(PORTAL_LANGUAGES) * len(pages)
    assert re.search(r"/requests/[\w-]+$", status)
    # The check can fail: an image without a text alternative is a violation.
    driver.execute_script("document.querySelector('main').append(document.createElement('img'))")
    assert "image-alt" in [v["id"] for v in axe_run(driver)]
