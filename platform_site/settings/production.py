"""Production: only tightens the base settings. Secrets have no defaults (fail at boot)."""

from __future__ import annotations

from platform_site.env import email_config
from platform_site.settings.base import *  # noqa: F403
from platform_site.settings.base import env

# Real mail or the explicit discard://: no file, memory or console backend (README "Security").
vars().update(email_config(env.str("EMAIL_URL"), production=True))

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Load balancers probe and Prometheus scrapes over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
