"""Settings of the worker that the privacy integration tests start: the integration
worker's, plus a test-only subject handler that lingers, so a test can kill the worker in
the middle of an erasure."""

from __future__ import annotations

from platform_site.settings.worker_test import *  # noqa: F403
from platform_site.settings.worker_test import CELERY_IMPORTS

CELERY_IMPORTS = [*CELERY_IMPORTS, "tests.privacy.worker_hooks"]
