"""Test settings: SQLite in memory and eager tasks unless DATABASE_URL / CELERY_BROKER_URL
are set (CI's second run uses PostgreSQL + Redis with a real worker for ``integration``)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("DISCREET_MASTER_KEY", "test-only-master-key-0123456789abcdef")
os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
# In memory (pytest-django uses it anyway; the integration worker inherits this): never printed.
os.environ.setdefault("EMAIL_URL", "memorymail://")
# Exported audit heads go to a directory of this test run (shared with the worker it starts,
# which inherits the environment): tenant ids restart with each test database, so heads left
# by an earlier run must never be read as this run's.
if "AUDIT_HEADS_DIR" not in os.environ:
    os.environ["AUDIT_HEADS_DIR"] = tempfile.mkdtemp(prefix="discreet-audit-heads-")
    atexit.register(shutil.rmtree, os.environ["AUDIT_HEADS_DIR"], ignore_errors=True)

# The run's own tombstone store (the integration worker inherits it through the environment).
if "TOMBSTONE_DIR" not in os.environ:
    os.environ["TOMBSTONE_DIR"] = tempfile.mkdtemp(prefix="discreet-test-tombstones-")
    atexit.register(shutil.rmtree, os.environ["TOMBSTONE_DIR"], ignore_errors=True)

# Webhook receivers in tests listen on loopback over plain http, and retries come quickly
# (the integration worker inherits these through the environment).
os.environ.setdefault("WEBHOOK_ALLOW_LOOPBACK", "true")
os.environ.setdefault("WEBHOOK_REQUIRE_HTTPS", "false")
os.environ.setdefault("WEBHOOK_BACKOFF_BASE_SECONDS", "0.2")

from platform_site.settings.base import *  # noqa: F403
from platform_site.settings.base import VAR_DIR, env

# Unit tests run tasks in-process; integration tests switch this off for their duration.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "test-celerybeat-schedule")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"api_key": "100000/min"}  # noqa: F405

# runserver and the test client serve static files themselves; WhiteNoise is for production.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]  # noqa: F405
