from __future__ import annotations

import pytest

from apps.modeling.services import serving


@pytest.fixture(autouse=True)
def _isolated_artifacts(request, settings, tmp_path):
    """Model artifacts go to a temporary media root; the serving cache starts empty."""
    if not request.node.get_closest_marker("browser"):
        settings.MEDIA_ROOT = str(tmp_path / "media")
    serving.clear_cache()
    yield
    serving.clear_cache()
