"""The transparency page in every language of the portal, in a real browser (Debian's
chromium, as in test_browser.py): the language chosen with the portal's switcher applies to
it, and axe-core (``tests/browser/vendor/axe.min.js``, MPL-2.0) finds no accessibility
violation on it nor on its 404 page, in English, German, French and Spanish."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from apps.modeling.services import train_model
from apps.privacy.i18n import PORTAL_LANGUAGES
from tests.browser.helpers import axe_violations, submit
from tests.factories.modeling import configure, planted_dataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HEADINGS = {"en": "How recommendations work at", "de": "Wie Empfehlungen bei",
            "fr": "Comment fonctionnent les recommandations chez",
            "es": "Cómo funcionan las recomendaciones en"}


def test_axe_finds_no_violation_on_the_page_in_every_language(browser, live_server, tenant):
    from selenium.webdriver.common.by import By

    planted_dataset(tenant)
    configure(tenant, model_algorithms=["bm25"])
    train_model(tenant=tenant)       # the page with a model, its retention table and levels
    browser.set_script_timeout(60)
    page = f"/privacy/{tenant.slug}/how-recommendations-work"
    missing = "/privacy/no-such-tenant/how-recommendations-work"
    checked = []
    for code, _name in PORTAL_LANGUAGES:
        # The portal's switcher (a GET form) keeps the choice in the language cookie.
        browser.get(f"{live_server.url}/privacy/{tenant.slug}/language?language={code}"
                    f"&next={quote(page)}")
        assert browser.current_url == live_server.url + page
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == code
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith(HEADINGS[code])
        assert browser.find_element(By.CSS_SELECTOR, "#serving-algorithm [data-algorithm]")
        assert axe_violations(browser) == [], (code, "page")
        browser.get(live_server.url + missing)
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == code
        assert axe_violations(browser) == [], (code, "404")
        checked.append(code)
    assert checked == ["en", "de", "fr", "es"]
    # The page has the portal's switcher (one page frame): it comes back here, in German.
    browser.get(live_server.url + page)
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "language")).select_by_value("de")
    submit(browser, "footer form.languages button[type=submit]")
    assert browser.current_url == live_server.url + page
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"
    served = browser.find_element(By.CSS_SELECTOR, "#serving-algorithm [data-algorithm]")
    assert served.text == "BM25-Artikel-kNN (ähnliche Artikel, implicit)"
    assert browser.find_element(
        By.CSS_SELECTOR, "li[data-store='events.event']").text.startswith("Interaktionen: ")
    # The check can fail: a part in a language with no valid code is a violation.
    browser.execute_script("document.querySelector('main').setAttribute('lang', 'xx-!')")
    assert any(v.startswith("valid-lang") for v in axe_violations(browser))
