from __future__ import annotations

import logging
import smtplib
from urllib.parse import quote

import pytest

from apps.core.pii import MaskPersonalDataFilter, mask_personal_data, mask_subject_ids

ADDRESS = "a@b.example"


@pytest.mark.parametrize(("text", "expected"), [
    ("Not Found: /api/v1/subjects/alice@example.com/consent",
     "Not Found: /api/v1/subjects/MASKED/consent"),
    ('"GET /api/v1/recommendations?subject=u-42&n=5 HTTP/1.1" 200',
     '"GET /api/v1/recommendations?subject=MASKED&n=5 HTTP/1.1" 200'),
    ("/api/v1/items/sku-1/similar", "/api/v1/items/sku-1/similar"),
    # Subject ids containing "/" (the route takes <path:subject>), however encoded.
    ("Not Found: /api/v1/subjects/org/a@b.example/consent",
     "Not Found: /api/v1/subjects/MASKED/consent"),
    ('"PUT /api/v1/subjects/org/customer-42/restriction HTTP/1.1" 403 12',
     '"PUT /api/v1/subjects/MASKED/restriction HTTP/1.1" 403 12'),
    ("GET /api/v1/subjects/org%2Fa%40b.example/consent 200",
     "GET /api/v1/subjects/MASKED/consent 200"),
    ("GET /api/v1/subjects/org%252Fa%2540b.example%2Fconsent 200",
     "GET /api/v1/subjects/MASKED%2Fconsent 200"),
    ("GET /api/v1/subjects%2Forg%2Fcustomer-42/consent 200",
     "GET /api/v1/subjects%2FMASKED/consent 200"),
    ("GET /api/v1/%73ubjects/org/customer-42/consent 200",
     "GET /api/v1/%73ubjects/MASKED/consent 200"),
    ("/api/v1/subjects/org/customer-42/no-such-route/x",
     "/api/v1/subjects/MASKED"),
    ("/api/v1/subjects/a%3Fb/customer-42/consent?x=1",  # an encoded "?" is part of the id
     "/api/v1/subjects/MASKED/consent?x=1"),
    ("/api/v1/recommendations?n=5&%73ubject=org%2Fcustomer-42&x=1",
     "/api/v1/recommendations?n=5&%73ubject=MASKED&x=1"),
    ("/api/v1/recommendations%3Fsubject%3Dcustomer-42",
     "/api/v1/recommendations%3Fsubject%3DMASKED"),
])
def test_subject_ids_in_paths_are_masked(text, expected):
    assert mask_subject_ids(text) == expected


@pytest.mark.parametrize("text", [
    "reply to alice.smith+tag@mail.example.co.uk please",
    quote("alice.smith+tag@mail.example.co.uk"),
    quote(quote("alice.smith+tag@mail.example.co.uk")),
    "GET /privacy/acme/verify?r=PR-1&token=Zt9-secret_token HTTP/1.1",
    "GET /privacy/acme/download/Zt9-secret_token HTTP/1.1",
    "GET /privacy/acme/start?token%3DZt9-secret_token HTTP/1.1",
])
def test_addresses_and_portal_tokens_are_masked(text):
    masked = mask_personal_data(text)
    assert "alice" not in masked
    assert "secret_token" not in masked
    assert "MASKED" in masked


def test_the_filter_rewrites_django_request_records():
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s: %s",
                               ("Bad Request", "/api/v1/subjects/bob@example.com/consent"), None)
    assert MaskPersonalDataFilter().filter(record)
    assert "bob@example.com" not in record.getMessage()


def test_every_configured_handler_masks(settings):
    for name in (None, "django.request", "django.server", "gunicorn.access"):
        handlers = logging.getLogger(name).handlers
        ours = [h for h in handlers if type(h) is logging.StreamHandler]
        assert ours, name
        assert all(any(isinstance(f, MaskPersonalDataFilter) for f in h.filters) for h in ours)


@pytest.mark.parametrize("subject", ["org/a@b.example", "org%2Fa%40b.example",
                                     "org%252Fa%2540b.example"])
def test_request_logs_never_show_a_subject_id(subject, api, log_output):
    """Django's request logger prints the (decoded) path of a 404; an access log prints it
    as sent: neither shows the id, whatever its encoding."""
    path = f"/api/v1/subjects/{subject}/no-such-route"
    assert api.get(path).status_code == 404
    logging.getLogger("django.server").info('"%s" %s %s', f"GET {path} HTTP/1.1", "404", "77")
    logging.getLogger("gunicorn.access").info(
        "%(m)s %(U)s %(s)s", {"m": "GET", "U": f"/api/v1/subjects/{subject}/consent", "s": 200})
    written = log_output.getvalue()
    assert "Not Found: /api/v1/subjects/MASKED" in written
    assert "GET /api/v1/subjects/MASKED/consent 200" in written
    for needle in ("a@b", "a%40b", "a%2540b", "org"):
        assert needle not in written


def test_an_exception_naming_recipients_is_logged_without_them(log_output):
    """A refused mail's exception text holds the recipient: so does the traceback."""
    try:
        raise smtplib.SMTPRecipientsRefused({ADDRESS: (550, b"no such user")})
    except smtplib.SMTPRecipientsRefused:
        logging.getLogger("privacy.notifications").exception("privacy.email_failed kind=%s",
                                                             "verify")
    written = log_output.getvalue()
    assert "privacy.email_failed kind=verify" in written
    assert "SMTPRecipientsRefused" in written
    assert ADDRESS not in written
