from __future__ import annotations

import pytest
from auditlog.context import disable_auditlog

from apps.tenants.models import Tenant
from tests.factories.tenants import TenantFactory


def _tenant_with_an_empty_chain() -> Tenant:
    """A provisioned tenant whose creation left no django-auditlog entries, so nothing was
    anchored (apps.audit.config_changes) and its chain starts at #1: the chain tests here
    read sequence numbers plainly. Anchoring has its own tests (test_config_changes.py)."""
    with disable_auditlog():
        return TenantFactory()


@pytest.fixture
def tenant(db) -> Tenant:
    return _tenant_with_an_empty_chain()


@pytest.fixture
def other_tenant(db) -> Tenant:
    return _tenant_with_an_empty_chain()
