"""Email settings (README "Configuration", issue 16 item 1): no setting prints mail to the
logs, production boots only with real mail or the explicit ``discard://``, and the
embedded default writes each message to a file in ``var/outbox/``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from platform_site.env import email_config
from tests.core.test_http_surface import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[2]
PRINT_BACKEND = ("from django.conf import settings; "
                 "print(settings.EMAIL_BACKEND, getattr(settings, 'EMAIL_FILE_PATH', None))")


def _boot(settings_module: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Start Django with ``settings_module`` in a fresh process; ``None`` unsets a variable."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module}
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    code = f"import django; django.setup(); {PRINT_BACKEND}"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("production", [False, True])
def test_the_console_backend_is_refused_everywhere(production):
    with pytest.raises(ImproperlyConfigured, match="prints"):
        email_config("consolemail://", production=production)


@pytest.mark.parametrize("url", ["filemail:///tmp/outbox", "memorymail://", "dummymail://"])
def test_production_takes_only_smtp_or_discard(url):
    assert email_config(url)  # fine for development
    with pytest.raises(ImproperlyConfigured, match="not for production"):
        email_config(url, production=True)


def test_discard_is_the_dummy_backend_and_smtp_keeps_its_options():
    assert email_config("discard://", production=True) == {
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend"}
    smtp = email_config("smtp+tls://mailer:pw@smtp.example.com:587", production=True)
    assert smtp["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (smtp["EMAIL_HOST"], smtp["EMAIL_PORT"], smtp["EMAIL_USE_TLS"]) == (
        "smtp.example.com", 587, True)


def test_a_filemail_url_names_its_directory():
    assert email_config("filemail:///srv/outbox")["EMAIL_FILE_PATH"] == "/srv/outbox"


@pytest.mark.slow
def test_production_refuses_to_boot_without_real_mail():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"}
    production = PRODUCTION_ENV["DJANGO_SETTINGS_MODULE"]
    missing = _boot(production, **{**env, "EMAIL_URL": None})
    assert missing.returncode != 0
    assert "EMAIL_URL" in missing.stderr
    for url in ("consolemail://", "filemail:///tmp/outbox"):
        refused = _boot(production, **{**env, "EMAIL_URL": url})
        assert refused.returncode != 0, url
        assert "ImproperlyConfigured" in refused.stderr
    discard = _boot(production, **{**env, "EMAIL_URL": "discard://"})
    assert discard.returncode == 0, discard.stderr
    assert discard.stdout.split()[0] == "django.core.mail.backends.dummy.EmailBackend"


@pytest.mark.slow
def test_the_embedded_default_writes_mail_to_var_outbox(tmp_path):
    booted = _boot("platform_site.settings.local", EMAIL_URL=None,
                   DISCREET_VAR_DIR=str(tmp_path), DATABASE_URL=None)
    assert booted.returncode == 0, booted.stderr
    backend, directory = booted.stdout.split()
    assert backend == "django.core.mail.backends.filebased.EmailBackend"
    assert directory == str(tmp_path / "outbox")
