from __future__ import annotations

import pytest

from apps.modeling.services import serving

# The browser tests' fixtures (chromium with and without JavaScript, any number of them).
from tests.browser.helpers import browser, no_js_browser, open_browser  # noqa: F401


@pytest.fixture(autouse=True)
def _isolated_artifacts(settings, tmp_path):
    """Model artifacts go to a temporary media root; the serving cache starts empty."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    serving.clear_cache()
    yield
    serving.clear_cache()
