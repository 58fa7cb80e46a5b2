"""The public transparency page in English, German, French and Spanish (issue 19, item 4): the
language follows the portal's rule (``apps.privacy.i18n.portal_language``: the switcher's
cookie, then ``Accept-Language``, then the tenant's ``portal_default_language``, then
English), and a page rendered for ``Accept-Language: de`` shows no English outside the
tenant's own words: the retention categories, the stores' categories and retention texts,
the method's label and logic are all translated (no fragment of a declared text, marked or
not, may show: ``assert_german`` with the tenant). The templates and
catalogues are checked in ``tests/privacy/test_portal_i18n.py``."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client

from apps.modeling.services import train_model
from apps.privacy import i18n
from tests.factories.modeling import configure, planted_dataset
from tests.privacy.test_portal_i18n import ENGLISH, assert_german, visible_text


def _url(tenant) -> str:
    return f"/privacy/{tenant.slug}/how-recommendations-work"


@pytest.fixture
def german():
    return Client(headers={"accept-language": "de-DE,de;q=0.9,en;q=0.5"})


def test_the_page_renders_in_german_with_accept_language_de(tenant, german):
    before = german.get(_url(tenant))           # no model yet: the popular list
    assert before.status_code == 200
    assert_german(before, "no model", tenant)
    assert "Noch ist kein personalisiertes Modell in Verwendung" in before.content.decode()

    planted_dataset(tenant)
    configure(tenant, model_algorithms=["bm25"])
    train_model(tenant=tenant)
    page = german.get(_url(tenant))
    assert_german(page, "with a model", tenant)
    html = page.content.decode()
    assert 'lang="en"' not in html[html.index("<main"):html.index("</main>")]
    assert '<dd data-algorithm="bm25">BM25-Artikel-kNN (ähnliche Artikel, implicit)</dd>' in html
    assert ('<li data-store="events.event"><strong>Interaktionen</strong>: Interaktionen '
            "werden höchstens 365 Tage aufbewahrt") in html
    # The page frame is the portal's: its switcher comes back here.
    assert f'name="next" value="{_url(tenant)}"' in html
    assert f"Wie Empfehlungen bei {tenant.name} funktionieren" in html
    assert "Verwendete Methode" in html
    assert re.search(r"<time [^>]*>\d{1,2}\. [A-Z][a-zä]+ \d{4}, \d\d:\d\d UTC</time>", html)
    assert "365 Tage" in html                  # the plural of the retention periods
    assert "Vollständig" in html
    assert "Nur Sitzung" in html
    # The platform's declarations are translated: the method's logic and the retention
    # categories (with the period another follows), no longer marked English.
    assert "<p>Es verwendet artikelbasiertes kollaboratives Filtern" in html
    assert '<th scope="row">Interaktionen</th>' in html
    assert '<th scope="row">Inaktive Personen</th>' in html
    assert "(die Frist von „Interaktionen“)" in html
    assert "ältere Modelldateien werden vernichtet" in html  # a rule that is not a period
    assert '<th scope="row">Consent ledger</th>' not in html


@pytest.mark.django_db
def test_the_404_page_renders_in_german(german):
    page = german.get("/privacy/no-such-tenant/how-recommendations-work")
    assert page.status_code == 404
    assert_german(page, "404")
    assert "Unter dieser Adresse gibt es keine Transparenzseite." in page.content.decode()


@pytest.mark.parametrize(("language", "heading"), [
    ("fr", "Comment fonctionnent les recommandations chez"),
    ("es", "Cómo funcionan las recomendaciones en"),
    ("en", "How recommendations work at"),
])
def test_the_page_exists_in_every_language(tenant, language, heading):
    page = Client(headers={"accept-language": language}).get(_url(tenant))
    html = page.content.decode()
    assert f'<html lang="{language}">' in html
    assert page["Content-Language"] == language
    assert f"{heading} {tenant.name}" in html
    if language != "en":
        text = visible_text(html, language)
        assert not [w for w in ENGLISH.findall(text) if w.lower() in ("the", "and", "your")]


def test_the_language_follows_the_portals_rule(tenant):
    url = _url(tenant)

    def lang(client: Client) -> str:
        page = client.get(url)
        assert "Accept-Language" in page["Vary"]
        assert "Cookie" in page["Vary"]
        return page["Content-Language"]

    assert lang(Client()) == "en"
    assert lang(Client(headers={"accept-language": "ja, es;q=0.5"})) == "es"
    tenant.settings = {**tenant.settings, i18n.DEFAULT_LANGUAGE_SETTING: "fr"}
    tenant.save(update_fields=["settings"])
    assert lang(Client()) == "fr"                                      # the tenant's default
    assert lang(Client(headers={"accept-language": "ja"})) == "fr"
    german = Client(headers={"accept-language": "de"})
    assert lang(german) == "de"                                        # the browser's
    # The portal's switcher sets the cookie; it wins over the header, here too.
    switched = german.get(f"/privacy/{tenant.slug}/language", {"language": "es", "next": url})
    assert switched["Location"] == url
    assert switched.cookies[settings.LANGUAGE_COOKIE_NAME].value == "es"
    assert lang(german) == "es"


def test_each_language_has_its_own_etag(tenant):
    english = Client().get(_url(tenant))
    german = Client(headers={"accept-language": "de"}).get(_url(tenant))
    assert english["ETag"] != german["ETag"]
    # A cache that revalidates a German copy with the English ETag gets the full page.
    again = Client(headers={"accept-language": "de"}).get(
        _url(tenant), headers={"if-none-match": english["ETag"]})
    assert again.status_code == 200
    assert Client(headers={"accept-language": "de"}).get(
        _url(tenant), headers={"if-none-match": german["ETag"]}).status_code == 304
