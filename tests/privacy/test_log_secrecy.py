"""No log line, under any setting, holds a requester's address or a live portal token
(README "Security", issue 16 item 1).

The whole portal flow (request, emailed verification link, status, emailed download link,
download) runs with the email settings of each environment while everything the process
writes is captured: its log handlers (filters included), stdout and stderr, plus the access
lines a web server would log for every URL the flow visited. On the embedded default the
mail goes to files in the outbox directory, where the test (like a developer running
``make run``) reads the links; production sends it (or, with ``discard://``, nothing).
"""

from __future__ import annotations

import email
import logging
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core import mail

from platform_site.env import DISCARD_EMAIL_URL, email_config, embedded_email_url

ADDRESS = "alice.requester@example.com"
LINK = re.compile(r"https?://[^\s/]+(/privacy/\S+)")


def _apply(settings, config: dict) -> None:
    for name in [n for n in dir(settings._wrapped) if n.startswith("EMAIL_")]:
        if name not in config and name != "EMAIL_BACKEND":
            setattr(settings, name, None)
    for name, value in config.items():
        setattr(settings, name, value)


def _outbox(directory: Path) -> list[email.message.Message]:
    """The messages Django's file backend wrote (one file per connection, messages
    separated by a line of dashes)."""
    chunks = [chunk for path in sorted(directory.glob("*.log"))
              for chunk in path.read_text().split("-" * 79 + "\n")]
    return [email.message_from_string(c.lstrip("\n")) for c in chunks if c.strip()]


def _body(message: email.message.Message) -> str:
    return message.get_payload(decode=True).decode()


def _flow(portal, tenant, oncommit, read_mail) -> tuple[list[str], set[str]]:
    """Ask for a copy of the data, verify by the emailed link, download by the emailed
    link. Returns the URLs visited and the secrets the mails carried."""
    visited: list[str] = []
    secrets: set[str] = set()

    def go(method: str, url: str, data: dict | None = None):
        visited.append(url)
        return getattr(portal, method)(url, data or {})

    base = f"/privacy/{tenant.slug}/"
    go("get", base)
    with oncommit():
        asked = go("post", base + "request",
                   {"kind": "access", "regime": "gdpr", "identifier": ADDRESS})
    assert asked.status_code == 302
    go("get", asked["Location"])
    mails = read_mail()
    if not mails:
        return visited, secrets
    verify = next(LINK.search(body).group(1) for to, body in mails if "verify" in body)
    secrets.add(re.search(r"token=([\w-]+)", verify).group(1))
    assert go("get", verify).status_code == 200
    path, query = verify.split("?")
    fields = dict(pair.split("=") for pair in query.split("&"))
    with oncommit():
        done = go("post", path, fields)
    assert done.status_code == 302
    go("get", done["Location"])
    download = next(LINK.search(body).group(1) for to, body in read_mail()
                    if "/download/" in body)
    secrets.add(download.rsplit("/", 1)[1])
    assert go("get", download).status_code == 200
    fetched = go("post", download)
    assert fetched.status_code == 200
    assert fetched["Content-Type"] == "application/zip"
    assert {to for to, _ in read_mail()} == {ADDRESS}
    return visited, secrets


def _access_lines(visited: list[str]) -> None:
    """What runserver and gunicorn log for each request, through their real loggers."""
    for url in visited:
        logging.getLogger("django.server").info('"%s" %s %s', f"GET {url} HTTP/1.1", "200", "9")
        path, _, query = url.partition("?")
        logging.getLogger("gunicorn.access").info(
            "%(m)s %(U)s %(q)s %(s)s", {"m": "GET", "U": path, "q": query, "s": "200"})


def _assert_nothing_leaked(written: str, secrets: set[str]) -> None:
    for needle in {ADDRESS, quote(ADDRESS), quote(ADDRESS, safe=""), *secrets}:
        assert needle not in written, f"{needle!r} was logged"


@pytest.fixture
def flow_logs(log_output, capfd):
    """Everything written while the test runs: log handlers, stdout, stderr."""
    def read() -> str:
        out, err = capfd.readouterr()
        return log_output.getvalue() + out + err

    return read


def test_the_embedded_default_writes_mail_to_the_outbox_and_logs_none_of_it(
        tenant, portal, oncommit, settings, tmp_path, flow_logs):
    config = email_config(embedded_email_url())
    assert config["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    config["EMAIL_FILE_PATH"] = str(tmp_path / "outbox")  # not the checkout's var/outbox
    _apply(settings, config)

    def read_mail() -> list[tuple[str, str]]:
        return [(m["To"], _body(m)) for m in _outbox(tmp_path / "outbox")]

    visited, secrets = _flow(portal, tenant, oncommit, read_mail)
    assert len(secrets) == 2  # the verification token and the download token
    _access_lines(visited)
    _assert_nothing_leaked(flow_logs(), secrets)


def test_production_mail_is_sent_and_logs_none_of_it(tenant, portal, oncommit, settings,
                                                      flow_logs):
    """Production's SMTP backend prints nothing; the locmem backend stands in for the
    server here (pytest-django's), so the flow can read the links it would send."""
    assert email_config("smtp+tls://u:p@smtp.example.com:587", production=True)[
        "EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    def read_mail() -> list[tuple[str, str]]:
        return [(m.to[0], m.body) for m in mail.outbox]

    visited, secrets = _flow(portal, tenant, oncommit, read_mail)
    assert len(secrets) == 2
    _access_lines(visited)
    _assert_nothing_leaked(flow_logs(), secrets)


def test_discard_sends_and_prints_nothing(tenant, portal, oncommit, settings, flow_logs):
    _apply(settings, email_config(DISCARD_EMAIL_URL, production=True))
    visited, secrets = _flow(portal, tenant, oncommit, lambda: [])
    _access_lines(visited)
    _assert_nothing_leaked(flow_logs(), secrets)


def test_the_capture_sees_what_a_printing_backend_would_print(settings, flow_logs):
    """The check above can fail: the console backend (refused by every setting now, the
    default before) prints the address and the link to stdout, and the capture sees it."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    mail.send_mail("Confirm", "https://x.example/privacy/acme/download/Tok3n", "p@x.example",
                   [ADDRESS])
    written = flow_logs()
    assert ADDRESS in written
    assert "Tok3n" in written
