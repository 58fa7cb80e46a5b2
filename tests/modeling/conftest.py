from __future__ import annotations

import pytest

from apps.modeling.services import serving


@pytest.fixture(autouse=True)
def _isolated_artifacts(request, settings, tmp_path):
    """Artifacts of unit tests go to a temporary media root; the serving cache starts
    empty. (Integration tests share var/media with the real worker.)"""
    if not request.node.get_closest_marker("integration"):
        settings.MEDIA_ROOT = str(tmp_path / "media")
    serving.clear_cache()
    yield
    serving.clear_cache()
