"""The real Celery worker that integration tests start: test settings, real task execution."""

from __future__ import annotations

from platform_site.settings.test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
CELERY_IMPORTS = ["tests.integration_tasks"]
