from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from apps.tenants.models import Membership, Tenant
from tests.factories.tenants import MembershipFactory


@pytest.fixture
def member_client(db) -> Callable[..., Client]:
    """``member_client(tenant, role)``: a logged-in admin client of a new member."""
    def make(tenant: Tenant, role: str = Membership.Role.OWNER) -> Client:
        membership = MembershipFactory(tenant=tenant, role=role)
        client = Client()
        client.force_login(membership.user)
        return client
    return make
