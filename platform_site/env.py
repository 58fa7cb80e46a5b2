"""Environment access for settings (12-factor, STYLE S14).

The embedded default must run on a fresh machine with no configuration, so development
secrets are generated once into ``var/secrets.json``; production settings never call that.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("DISCREET_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()


def local_secret(name: str) -> str:
    """Return ``name`` from the environment, else a value generated once into var/.

    Only the embedded default (local/test settings) uses this; production reads secrets
    with no default so a misconfigured deploy fails at boot.
    """
    if name in env:
        return env.str(name)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if name not in stored:
        stored[name] = secrets.token_urlsafe(48)
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return stored[name]


# --- Email (README "Configuration", "Security") ----------------------------------------------

DISCARD_EMAIL_URL = "discard://"
# Schemes production accepts: a real mail server, or the explicit choice to send no mail.
PRODUCTION_EMAIL_SCHEMES = frozenset({"smtp", "smtps", "smtp+tls", "smtp+ssl", "discard"})


def embedded_email_url() -> str:
    """The embedded default: every message written to a file in ``var/outbox/``, where the
    developer reads the links (``make run`` says so), never printed to the logs."""
    return f"filemail://{VAR_DIR / 'outbox'}"


def email_config(url: str, *, production: bool = False) -> dict[str, Any]:
    """Django's ``EMAIL_*`` settings from ``EMAIL_URL``: django-environ's schemes, plus
    ``discard://`` (Django's dummy backend: nothing sent, nothing printed). ``filemail://``
    takes the rest of the URL as its directory (``filemail:///srv/outbox``).

    The console backend is refused everywhere: it prints every message, recipient address
    and live link included, to the web and worker logs. Production takes only SMTP or
    ``discard://``, so a deploy without real mail fails at boot instead of writing links
    somewhere readable.
    """
    scheme, _, rest = url.partition("://")
    if not rest and not url.endswith("://"):
        raise ImproperlyConfigured(f"EMAIL_URL {scheme!r} is not a URL (smtp+tls://...).")
    if scheme == "consolemail":
        raise ImproperlyConfigured(
            "EMAIL_URL=consolemail:// prints recipients' addresses and live verification "
            "and download links to the logs. Use an smtp URL, filemail://<directory> for "
            "development, or discard://.")
    if production and scheme not in PRODUCTION_EMAIL_SCHEMES:
        raise ImproperlyConfigured(
            f"EMAIL_URL {scheme}:// is not for production: use smtp+tls://user:pw@host:587 "
            f"(or smtps://, smtp+ssl://, smtp://), or {DISCARD_EMAIL_URL} to send no mail.")
    if scheme == "discard":
        return {"EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend"}
    config: dict[str, Any] = env.email_url_config(url)
    if scheme == "filemail":
        config["EMAIL_FILE_PATH"] = rest.split("?", 1)[0] or str(VAR_DIR / "outbox")
    return config
