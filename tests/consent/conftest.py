from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.consent.models import PrivacyNotice


@pytest.fixture
def backdated_notices(tenant) -> None:
    """Put the tenant's default notice in effect long ago, for tests that travel in time."""
    PrivacyNotice.objects.for_tenant(tenant).update(effective_at=datetime(2000, 1, 1, tzinfo=UTC))
