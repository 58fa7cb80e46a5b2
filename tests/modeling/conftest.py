from __future__ import annotations

import pytest

from apps.modeling.services import serving
from tests.factories.events import grant_consent
from tests.factories.modeling import add_events, configure, planted_dataset


@pytest.fixture(autouse=True)
def _isolated_artifacts(request, settings, tmp_path):
    """Artifacts of unit tests go to a temporary media root; the serving cache starts
    empty. (Integration tests share var/media with the real worker.)"""
    if not request.node.get_closest_marker("integration"):
        settings.MEDIA_ROOT = str(tmp_path / "media")
    serving.clear_cache()
    yield
    serving.clear_cache()


@pytest.fixture
def heavy(tenant):
    """A planted tenant plus one heavy subject who bought, many times over, all of
    group 0 and group 1: enough influence to see it removed."""
    configure(tenant, model_algorithms=["als"], model_iterations=15)
    planted = planted_dataset(tenant, seed=11)
    key = grant_consent(tenant, "heavy")
    items = planted.groups[0] + planted.groups[1]
    for round_ in range(6):
        add_events(tenant, "heavy", items, subject_key=key,
                   start_minutes_ago=20_000 - 100 * round_)
    planted.keys["heavy"] = key
    return planted
