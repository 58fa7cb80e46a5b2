"""The serving state travels with the API-key lookup (a one-to-one row joined to it)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.modeling.models import ServingState
from apps.modeling.services.serving import _serving_state
from apps.modeling.services.training import serving_state
from apps.tenants.services import authenticate_api_key, loaded_with_api_key
from tests.factories.tenants import make_api_key


def test_the_key_query_carries_its_own_tenants_serving_state_only(tenant, other_tenant):
    ServingState.objects.create(tenant=tenant, catalog_stamp=7, active_revision=2)
    ServingState.objects.create(tenant=other_tenant, catalog_stamp=99, active_revision=5)
    _, raw_key = make_api_key(tenant)
    with CaptureQueriesContext(connection) as captured:
        api_key = authenticate_api_key(raw_key)
        assert api_key is not None
        assert _serving_state(api_key.tenant) == (None, 2, 7)
    lookup = captured.captured_queries[0]["sql"]  # the key, its tenant and its state
    assert "modeling_servingstate" in lookup
    assert all(q["sql"].startswith("UPDATE") for q in captured.captured_queries[1:])


def test_the_joined_state_is_handed_out_once_per_request(tenant):
    """A later read in the same request (after an erasure patch moved the revision, say)
    reads the row again instead of trusting what the key lookup joined."""
    state = serving_state(tenant)
    _, raw_key = make_api_key(tenant)
    api_key = authenticate_api_key(raw_key)
    assert _serving_state(api_key.tenant) == (None, 0, 0)
    ServingState.objects.for_tenant(tenant).filter(pk=state.pk).update(active_revision=3)
    with CaptureQueriesContext(connection) as captured:
        assert _serving_state(api_key.tenant) == (None, 3, 0)
    assert len(captured.captured_queries) == 1
    assert not loaded_with_api_key(api_key.tenant)


def test_a_tenant_without_the_row_reads_none_with_the_key(tenant):
    _, raw_key = make_api_key(tenant)
    api_key = authenticate_api_key(raw_key)
    with CaptureQueriesContext(connection) as captured:
        assert _serving_state(api_key.tenant) is None
    assert captured.captured_queries == []


def test_any_other_tenant_object_reads_the_row_itself(tenant):
    """A tenant object that did not come with the key may hold a stale cache (Django
    caches ``None`` on a new tenant's reverse one-to-one): serving never trusts it."""
    assert not loaded_with_api_key(tenant)
    state = serving_state(tenant)
    ServingState.objects.for_tenant(state.tenant_id).filter(pk=state.pk).update(catalog_stamp=4)
    with CaptureQueriesContext(connection) as captured:
        assert _serving_state(tenant) == (None, 0, 4)
    assert len(captured.captured_queries) == 1
