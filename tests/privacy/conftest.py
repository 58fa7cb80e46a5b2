from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from django.core.cache import cache
from django.test import Client

# The browser tests' fixtures (chromium with and without JavaScript, any number of them).
from tests.browser.helpers import browser, no_js_browser, open_browser  # noqa: F401


@pytest.fixture(autouse=True)
def _isolated_files_and_cache(settings, tmp_path) -> Iterator[None]:
    """Export files under a temporary MEDIA_ROOT; rate limits start from zero."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def oncommit(django_capture_on_commit_callbacks) -> Callable[[], AbstractContextManager]:
    """``with oncommit(): ...`` runs what the code sends after commit (tasks run eagerly in
    the unit suite, mails land in ``mail.outbox``), as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def portal() -> Client:
    return Client()
