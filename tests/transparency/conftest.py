from __future__ import annotations

import pytest

from apps.modeling.services import serving

# The portal's browser fixtures (Chromium with and without JavaScript), for test_browser.
from tests.privacy.test_browser import browser, no_js_browser  # noqa: F401


@pytest.fixture(autouse=True)
def _isolated_artifacts(settings, tmp_path):
    """Model artifacts go to a temporary media root; the serving cache starts empty."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    serving.clear_cache()
    yield
    serving.clear_cache()
