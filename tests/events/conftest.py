from __future__ import annotations

import pytest

from tests.factories.events import grant_consent


@pytest.fixture
def consenting(tenant) -> str:
    """A raw subject id of ``tenant`` with personalization consent at level full."""
    grant_consent(tenant, "alice@example.com")
    return "alice@example.com"
