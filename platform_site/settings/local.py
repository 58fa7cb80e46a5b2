"""The embedded default: SQLite and a file-system broker in var/, no external service."""

from __future__ import annotations

import os

from platform_site.env import embedded_email_url, local_secret

os.environ.setdefault("SECRET_KEY", local_secret("SECRET_KEY"))
os.environ.setdefault("DISCREET_MASTER_KEY", local_secret("DISCREET_MASTER_KEY"))
os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
os.environ.setdefault("EMAIL_URL", embedded_email_url())  # files in var/outbox/, never printed
os.environ.setdefault("WEBHOOK_ALLOW_LOOPBACK", "true")  # a receiver on this machine

from platform_site.settings.base import *  # noqa: F403

# runserver and the test client serve static files themselves; WhiteNoise is for production.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]  # noqa: F405
