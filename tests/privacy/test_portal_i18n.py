"""The portal and the emails to subjects in English, German, French and Spanish (issue 19,
item 4): the language comes from the switcher's cookie, then ``Accept-Language``, then the
tenant's ``portal_default_language``; ``lang`` is set on every page; the API stays as it was.

Two nets for an unmarked string: every text node and human-readable attribute of the portal's
and the emails' templates must sit inside a translate tag (a static check), and every portal
page, rendered in German, must show no English sentence (catches strings from Python too).
The public transparency page (``apps.transparency``, its own catalogues) is held to the same:
see ``tests/transparency/test_i18n.py``.

A third net, driven by the declarations rather than a list: every text the platform declares
for a subject (each subject-data store's category and retention text, each algorithm's label,
the erasure receipt's model statuses and sentences, the names of what a request changed) must
be translated in every language, and no English fragment of any of them may show on a page
rendered in German."""

from __future__ import annotations

import gettext
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.template.base import Lexer, TokenType
from django.test import Client
from django.utils import translation

from apps.core.subject_data import category_name, retention_notice, subject_data_stores
from apps.modeling.recommenders import recommenders
from apps.privacy import i18n
from apps.privacy.models import PrivacyRequest
from apps.privacy.services import sign_portal_token
from apps.privacy.services.receipts import FINAL, LABELS, PENDING, model_label, model_text
from tests.factories.privacy import seed_subject

APPS = Path(__file__).resolve().parents[2] / "apps"
TEMPLATES = APPS / "privacy" / "templates" / "privacy"
LOCALE = APPS / "privacy" / "locale"
#: The catalogues of subject-facing text, each with the least number of entries it holds
#: (the platform's declarations a subject reads: retention categories, the recommenders'
#: logic texts, in the catalogue of the app that declares them).
CATALOGUES = {LOCALE: 150, APPS / "transparency" / "locale": 50,
              APPS / "retention" / "locale": 5, APPS / "consent" / "locale": 7,
              APPS / "events" / "locale": 2, APPS / "modeling" / "locale": 9,
              APPS / "audit" / "locale": 1, APPS / "core" / "locale": 2}
#: Emails to the tenant's staff, not to a subject.
STAFF_EMAILS = {"staff_reminder.txt", "staff_approval.txt"}
#: Templates a subject reads. (``STAFF_EMAILS`` go to the tenant's staff: English;
#: ``templates/admin`` is the staff's console: English too.)
SUBJECT_TEMPLATES = sorted([*TEMPLATES.glob("portal/*.html"),
                            *(p for p in TEMPLATES.glob("email/*.txt")
                              if p.name not in STAFF_EMAILS),
                            *(APPS / "transparency" / "templates" / "transparency").glob("*.html")])
#: Words the same in every language of the portal.
NEUTRAL = {"UTC"}
READABLE_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt")
ENGLISH = re.compile(r"\b(the|and|your|you|with|this|that|is|are|not|of|to|for|we|our|"
                     r"please|request|data|choices)\b", re.IGNORECASE)


# --- The static net -------------------------------------------------------------------------------


def untranslated(source: str) -> list[str]:
    """Human text in a Django template outside ``translate``/``blocktranslate`` (and
    comments): the template's text with every tag and variable replaced by a placeholder,
    then HTML tags removed; what is left, and readable attributes, must have no words."""
    kept: list[str] = []
    skip_until = ""
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0]
            if skip_until:
                skip_until = "" if name == skip_until else skip_until
            elif name in ("blocktranslate", "blocktrans", "comment"):
                skip_until = {"comment": "endcomment"}.get(name, f"end{name}")
            kept.append("\x00")
        elif token.token_type == TokenType.TEXT and not skip_until:
            kept.append(token.contents)
        else:
            kept.append("\x00")
    text = re.sub(r"<style>.*?</style>", " ", "".join(kept), flags=re.S)
    found: list[str] = []
    for attribute in READABLE_ATTRIBUTES:
        found.extend(f'{attribute}="{value}"'
                     for value in re.findall(rf'{attribute}="([^"]*)"', text)
                     if re.search(r"[A-Za-z]{2,}", value))
    text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r"&\w+;", " ", text)
    words = re.findall(r"[A-Za-z][A-Za-z'\u2019-]+", text)
    found += [word for word in words if word not in NEUTRAL]
    return found


def test_the_check_finds_an_unmarked_string():
    assert untranslated("{% load i18n %}<p>Hello there</p>") == ["Hello", "there"]
    assert untranslated('<nav aria-label="Main">{% translate "x" %}</nav>') == \
        ['aria-label="Main"']
    assert untranslated("{% blocktranslate %}Hello {{ name }}{% endblocktranslate %}") == []
    assert untranslated("<style>body { color: red; }</style>{{ x }} UTC") == []


@pytest.mark.parametrize("path", SUBJECT_TEMPLATES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_string_a_subject_reads_is_marked_for_translation(path):
    assert untranslated(path.read_text()) == [], path


def test_the_subject_templates_include_the_transparency_page():
    names = {f"{p.parent.name}/{p.name}" for p in SUBJECT_TEMPLATES}
    assert {"transparency/how_recommendations_work.html", "transparency/base.html",
            "transparency/not_found.html", "email/duplicate.txt", "portal/status.html"} <= names


@pytest.mark.parametrize("locale", CATALOGUES, ids=lambda p: p.parent.name)
@pytest.mark.parametrize("language", ["de", "fr", "es"])
def test_the_catalogues_are_complete_and_compiled(locale, language):
    po = (locale / language / "LC_MESSAGES" / "django.po").read_text()
    entries = po.split("\n\n")[1:]
    assert len(entries) > CATALOGUES[locale]
    empty = [e for e in entries if re.search(r'^msgstr(\[\d\])? ""$', e, re.M)
             or "#, fuzzy" in e]
    assert empty == []
    mo = locale / language / "LC_MESSAGES" / "django.mo"
    assert mo.exists()
    # The compiled catalogue says what its .po says (a clone's file times prove nothing).
    with mo.open("rb") as fh:
        compiled = gettext.GNUTranslations(fh)._catalog
    stale = {key: text for key, text in _po_messages(po).items() if compiled.get(key) != text}
    assert stale == {}, f"{mo} does not match its .po: run msgfmt (docs/privacy.md)"


def _po_messages(po: str) -> dict:
    """The translated messages of a .po file, keyed as ``GNUTranslations`` keys them."""
    messages = {}
    for entry in po.split("\n\n")[1:]:
        fields: dict[str, str] = {}
        field = None
        for line in entry.splitlines():
            if line.startswith("#"):
                continue
            if line.startswith('"'):
                fields[field] += json.loads(line)
                continue
            field, _, quoted = line.partition(" ")
            fields[field] = json.loads(quoted)
        if "msgid" not in fields:
            continue
        msgid = fields["msgid"]
        if "msgctxt" in fields:
            msgid = f"{fields['msgctxt']}\x04{msgid}"
        if "msgid_plural" in fields:
            for name, text in fields.items():
                if name.startswith("msgstr["):
                    messages[(msgid, int(name[7:-1]))] = text
        else:
            messages[msgid] = fields["msgstr"]
    return messages


# --- The rendered net -----------------------------------------------------------------------------

VOID = {"meta", "input", "br", "img", "link", "hr", "source", "col", "area", "base", "wbr"}


class _Text(HTMLParser):
    """The visible text of a page, less the parts that say they are in another language
    (``lang``) or are the tenant's own words (``tenant-text``)."""

    def __init__(self, page_lang: str) -> None:
        super().__init__()
        self.page_lang, self.stack, self.parts = page_lang, [], []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        attrs = dict(attrs)
        foreign = (tag in ("style", "script")
                   or (tag != "html" and attrs.get("lang") not in (None, self.page_lang))
                   or "tenant-text" in (attrs.get("class") or "").split())
        self.stack.append((tag, foreign or (bool(self.stack) and self.stack[-1][1])))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if not (self.stack and self.stack[-1][1]):
            self.parts.append(data)


def visible_text(page: str, lang: str) -> str:
    parser = _Text(lang)
    parser.feed(page)
    return " ".join(" ".join(parser.parts).split())


def english_sentences() -> list[str]:
    """The longer English fragments of the catalogue (between placeholders)."""
    po = "\n".join((locale / "de" / "LC_MESSAGES" / "django.po").read_text()
                   for locale in CATALOGUES)
    fragments = []
    for msgid in re.findall(r'^msgid(?:_plural)? "(.+)"$', po, re.M):
        fragments += [f for f in re.split(r"%\(\w+\)s|\{\w+\}|<[^>]*>", msgid)
                      if len(f.strip()) >= 18]
    return fragments


#: Sections of an erasure receipt's model part, one per sentence ``model_text`` can say.
RECEIPT_SECTIONS = [
    {"status": PENDING, "reason": "model_holds_subject", "model_version": {"label": "v2"},
     "retrain": None, "open_versions": []},
    {"status": PENDING, "reason": "artifact_unreadable", "problem": "missing",
     "model_version": {"label": "v2"}, "retrain": {"status": "running"}, "open_versions": []},
    {"status": PENDING, "reason": "artifact_checksum_mismatch", "model_version": {"label": "v2"},
     "retrain": {"status": "pending"}, "open_versions": []},
    {"status": PENDING, "reason": "not_shown_retrained", "model_version": {"label": "v2"},
     "learned_from_subject": True, "retrain": {"status": "failed"}, "open_versions": []},
    {"status": PENDING, "reason": "not_shown_retrained", "model_version": None,
     "retrain": None, "open_versions": ["v1", "v2"]},
    {"status": FINAL, "outcome": "retrained", "artifact_sha256": "ab" * 32,
     "model_version": {"label": "v3", "activated_at": "2026-12-01T10:00:00+00:00"},
     "ever_trained": True},
    {"status": FINAL, "outcome": "not_trained_on_subject", "artifact_sha256": "ab" * 32,
     "model_version": {"label": "v3", "activated_at": None}, "ever_trained": True},
    {"status": FINAL, "outcome": "no_model_in_service", "artifact_sha256": None,
     "model_version": None, "ever_trained": True,
     "verification": {"versions": [{"label": "v1"}]}},
    {"status": FINAL, "outcome": "no_model", "artifact_sha256": None, "model_version": None,
     "ever_trained": True},
    {"status": FINAL, "outcome": "no_model", "artifact_sha256": None, "model_version": None,
     "ever_trained": False},
]


def declared_texts(tenant) -> dict[str, str]:
    """Every text the declarations give a subject, in the active language, by where it comes
    from: the stores' categories and retention texts (with the tenant's periods), the
    algorithms' labels, the receipt's model statuses and sentences, the changes' names."""
    texts = {}
    for store in subject_data_stores():
        texts[f"{store.name} category"] = category_name(store)
        texts[f"{store.name} retention"] = retention_notice(store, tenant).text
    for recommender in recommenders():
        texts[f"{recommender.name} label"] = str(recommender.label)
    for status in LABELS:
        texts[f"receipt {status}"] = model_label({"status": status})
    for number, section in enumerate(RECEIPT_SECTIONS):
        texts[f"receipt sentence {number}"] = model_text(section)
    for key, name in i18n.APPLIED_NAMES.items():
        texts[f"applied {key}"] = str(name)
    return texts


def declared_english(tenant) -> list[str]:
    """The declared texts in English, cut at figures and punctuation into the fragments a
    translation cannot contain (10 characters or more)."""
    with translation.override("en"):
        texts = declared_texts(tenant)
    fragments = set()
    for text in texts.values():
        fragments.update(f.strip() for f in re.split(r"[\d().;:,“”]+", text)
                         if len(f.strip()) >= 10)
    return sorted(fragments)


def assert_german(response, where: str, tenant=None) -> None:
    """``response`` is a page in German: no English word or catalogue sentence outside what
    is marked as another language; with ``tenant``, no fragment of a declared text either
    (marked or not: they are all translated)."""
    page = response.content.decode()
    assert '<html lang="de">' in page, where
    assert response["Content-Language"] == "de", where
    assert "Accept-Language" in response["Vary"], where
    text = visible_text(page, "de")
    assert not ENGLISH.findall(text), (where, ENGLISH.findall(text), text)
    leftovers = [f for f in english_sentences() if f.strip() in text]
    assert leftovers == [], where
    if tenant is not None:
        everything = " ".join(re.sub(r"<style>.*?</style>|<[^>]*>", " ", page,
                                     flags=re.S).split())  # marked parts too
        declared = [f for f in declared_english(tenant) if f in everything]
        assert declared == [], (where, declared)


@pytest.mark.parametrize("language", ["de", "fr", "es"])
def test_every_declared_text_a_subject_reads_is_translated(tenant, language):
    """Driven by the registries: a store, an algorithm, a receipt sentence or a change added
    without its translation fails here, naming it."""
    with translation.override("en"):
        english = declared_texts(tenant)
    with translation.override(language):
        translated = declared_texts(tenant)
    assert set(english) == set(translated)
    untranslated_ = sorted(where for where, text in translated.items()
                           if not text or text == english[where])
    assert untranslated_ == []


def test_declared_texts_cover_every_store_and_algorithm(tenant):
    names = set(declared_texts(tenant))
    assert {f"{s.name} category" for s in subject_data_stores()} <= names
    assert {f"{r.name} label" for r in recommenders()} <= names
    assert {"receipt pending", "receipt final"} <= names


def test_a_receipt_written_before_its_sentence_fields_shows_its_english_text():
    old = {"status": FINAL, "label": "final", "text": "Final: as written."}
    assert model_text(old) is None
    with translation.override("de"):
        assert model_label(old) == "endgültig"


def test_a_change_without_a_translated_name_is_shown_as_written_and_marked_english():
    with translation.override("de"):
        rows = i18n.applied_changes({"events_deleted": 2, "level": "off", "restricted": True,
                                     "new_thing": ["a", "b"]})
    assert rows == [
        {"name": "Gelöschte Interaktionen", "value": "2", "lang": ""},
        {"name": "Stufe der Personalisierung", "value": "Aus", "lang": ""},
        {"name": "Verarbeitung Ihrer Daten eingeschränkt", "value": "ja", "lang": ""},
        {"name": "New thing", "value": "a, b", "lang": "en"},
    ]


def main_of(response) -> str:
    """The page's ``<main>`` (the switcher's options name each language in itself)."""
    page = response.content.decode()
    return page[page.index("<main"):page.index("</main>")]


@pytest.fixture
def german():
    return Client(headers={"accept-language": "de-DE,de;q=0.9,en;q=0.5"})


def test_every_portal_page_renders_in_german_with_accept_language_de(
        tenant, german, django_capture_on_commit_callbacks):
    seed_subject(tenant, "alice@example.com", events=2)
    base = f"/privacy/{tenant.slug}/"
    pages = {"home": german.get(base),
             "form errors": german.post(base + "request", {}),
             "sent": german.get(base + "request/sent?what=verify"),
             "sent applied": german.get(base + "request/sent?what=applied"),
             "sent account": german.get(base + "request/sent?what=account"),
             "verify": german.get(base + "verify?r=abc&token=def"),
             "verify refused": german.post(base + "verify", {"r": "abc", "token": "def"}),
             "download": german.get(base + "download/nothing"),
             "download gone": german.post(base + "download/nothing"),
             "no request": german.get(base + "requests/nothing"),
             "needs a session": german.get(base + "my-data"),
             "bad signed link": german.get(base + "start?token=nope"),
             "no tenant": german.get("/privacy/no-such-tenant/")}
    statuses = {"form errors": 400, "verify refused": 400, "download gone": 410,
                "no request": 404, "needs a session": 403, "bad signed link": 400,
                "no tenant": 404}
    german.get(base + "start", {"token": sign_portal_token(tenant=tenant,
                                                            subject="alice@example.com")})
    pages.update({"verified home": german.get(base), "my data": german.get(base + "my-data"),
                  "choices": german.get(base + "preferences"), "why": german.get(base + "why")})
    with django_capture_on_commit_callbacks(execute=True):
        pages["choices saved"] = german.post(base + "preferences",
                                             {"purpose": ["personalization"], "level": "full"})
        event = german.get(base + "my-data").content.decode()
        event_id = re.search(r'name="event" value="([^"]+)"', event).group(1)
        removed = german.post(base + "my-data", {"event": [event_id]})
    pages["rectification status"] = german.get(removed["Location"])
    for where, response in pages.items():
        assert response.status_code == statuses.get(where, 200), where
        assert_german(response, where, tenant)
    assert "Was sich geändert hat" in pages["rectification status"].content.decode()
    assert "<li><span>Gelöschte Interaktionen</span>: 1</li>" in \
        pages["rectification status"].content.decode()
    my_data = main_of(pages["my data"])
    assert 'lang="en"' not in my_data
    with translation.override("de"):
        for store in subject_data_stores():
            assert f"<td>{category_name(store)}</td>" in my_data
            assert retention_notice(store, tenant).text in my_data


def test_an_erasure_receipt_renders_in_german(tenant, german,
                                              django_capture_on_commit_callbacks):
    seed_subject(tenant, "bob@example.com", events=2)
    base = f"/privacy/{tenant.slug}/"
    with django_capture_on_commit_callbacks(execute=True):
        german.post(base + "request", {"kind": "erasure", "regime": "gdpr",
                                       "identifier": "bob@example.com"})
    match = re.search(r"verify\?r=([\w-]+)&token=([\w-]+)", mail.outbox[0].body)
    with django_capture_on_commit_callbacks(execute=True):
        done = german.post(base + "verify", {"r": match.group(1), "token": match.group(2)})
    status = german.get(done["Location"])
    html = main_of(status)
    assert "Löschbestätigung" in html
    assert 'lang="en"' not in html
    assert "<td>Interaktionen</td>" in html
    assert '<span id="model-status">endgültig</span>' in html
    assert "Endgültig: Dieser Dienst hatte nie ein Empfehlungsmodell" in html
    assert_german(status, "erasure receipt", tenant)
    # The completion email says the same in German: categories and the model section.
    completed = mail.outbox[-1].body
    assert "- Interaktionen: 2" in completed
    assert "Empfehlungsmodell: endgültig" in completed
    assert [f for f in declared_english(tenant) if f in completed] == []


@pytest.mark.parametrize(("header", "expected"), [
    ("de", "de"), ("fr-CA,fr;q=0.8", "fr"), ("es-MX", "es"), ("en-GB,en;q=0.9", "en"),
    ("ja,pt;q=0.8", "en"), ("", "en"), ("ja, de;q=0.5", "de"),
])
def test_the_language_follows_accept_language(tenant, header, expected):
    page = Client(headers={"accept-language": header}).get(f"/privacy/{tenant.slug}/")
    assert f'<html lang="{expected}">' in page.content.decode()
    assert page["Content-Language"] == expected


def test_the_tenants_default_language_applies_when_the_browser_asks_for_none_of_them(tenant):
    tenant.settings = {**tenant.settings, i18n.DEFAULT_LANGUAGE_SETTING: "es"}
    tenant.save(update_fields=["settings"])
    url = f"/privacy/{tenant.slug}/"
    assert '<html lang="es">' in Client().get(url).content.decode()
    assert '<html lang="es">' in Client(headers={"accept-language": "ja"}).get(url) \
        .content.decode()
    assert '<html lang="fr">' in Client(headers={"accept-language": "fr"}).get(url) \
        .content.decode()
    tenant.settings = {**tenant.settings, i18n.DEFAULT_LANGUAGE_SETTING: "klingon"}
    tenant.save(update_fields=["settings"])
    assert '<html lang="en">' in Client().get(url).content.decode()


def test_the_switcher_keeps_the_choice_and_returns_to_the_page(tenant, german):
    base = f"/privacy/{tenant.slug}/"
    page = german.get(base + "request/sent?what=applied").content.decode()
    assert f'action="{base}language"' in page
    assert 'name="language"' in page
    assert f'name="next" value="{base}request/sent?what=applied"' in page
    switched = german.get(base + "language", {"language": "fr",
                                             "next": base + "request/sent?what=applied"})
    assert switched.status_code == 302
    assert switched["Location"] == base + "request/sent?what=applied"
    assert switched.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    after = german.get(base + "request/sent?what=applied")   # still Accept-Language: de
    assert '<html lang="fr">' in after.content.decode()
    assert "Votre demande est enregistrée" in after.content.decode()


@pytest.mark.parametrize("nxt", ["https://evil.example/", "//evil.example/", "/admin/",
                                 "/privacy/other-tenant/"])
def test_the_switcher_never_leaves_the_tenants_portal(tenant, nxt):
    answer = Client().get(f"/privacy/{tenant.slug}/language", {"language": "de", "next": nxt})
    assert answer["Location"] == f"/privacy/{tenant.slug}/"


def test_an_unknown_language_is_ignored(tenant):
    answer = Client().get(f"/privacy/{tenant.slug}/language", {"language": "xx"})
    assert settings.LANGUAGE_COOKIE_NAME not in answer.cookies


def test_emails_to_the_subject_are_in_the_language_of_the_request(
        tenant, django_capture_on_commit_callbacks):
    french = Client(headers={"accept-language": "fr"})
    with django_capture_on_commit_callbacks(execute=True):
        french.post(f"/privacy/{tenant.slug}/request",
                    {"kind": "access", "regime": "gdpr", "identifier": "chloe@example.com"})
    message = mail.outbox[-1]
    assert message.subject == f"Confirmez votre demande relative à vos données auprès de " \
                              f"{tenant.name}"
    assert message.body.startswith("Bonjour,")
    assert "Accès à vos données" in message.body
    assert not ENGLISH.findall(re.sub(r"\S+://\S+|\S+@\S+", "", message.body))
    # Later messages (sent by staff or the worker, outside any page) keep the language.
    from apps.privacy.services import reject_privacy_request

    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    with django_capture_on_commit_callbacks(execute=True):
        reject_privacy_request(privacy_request=pr, reason="Demande en double.", actor=None)
    rejected = mail.outbox[-1]
    assert rejected.subject == f"{tenant.name} n\u2019a pas pu donner suite à votre demande " \
                               f"relative à vos données"
    assert "autorité de contrôle" in rejected.body


def test_emails_use_the_tenants_default_language_without_a_portal_visit(
        tenant, django_capture_on_commit_callbacks):
    from tests.factories.privacy import make_request

    tenant.settings = {**tenant.settings, i18n.DEFAULT_LANGUAGE_SETTING: "de"}
    tenant.save(update_fields=["settings"])
    with django_capture_on_commit_callbacks(execute=True):
        make_request(tenant, "opt_out", channel=PrivacyRequest.Channel.MAIL,
                     subject="dora@example.com", regime="ccpa")
    assert mail.outbox[-1].subject == f"{tenant.name} hat Ihren Datenschutzantrag erledigt"
    assert mail.outbox[-1].body.startswith("Guten Tag,")


def test_the_api_stays_english_and_unvaried(tenant, api):
    answer = api.get("/api/v1/privacy-requests/999999", headers={"accept-language": "de"})
    assert answer.status_code == 404
    assert "Content-Language" not in answer
    assert "Accept-Language" not in answer.get("Vary", "")
