from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _isolated_files_and_cache(settings, tmp_path) -> Iterator[None]:
    """Export files and model artifacts under a temporary MEDIA_ROOT; portal rate limits
    start from zero; runs do not pause between batches."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.RETENTION_PAUSE_RATIO = 0  # no pause between batches: tests stay fast
    cache.clear()
    yield
    cache.clear()
