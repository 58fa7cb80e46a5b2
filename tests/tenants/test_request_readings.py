"""Readings that ride on the API-key query: scoped to the key's tenant, handed out once."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.modeling.models import ServingState
from apps.tenants.request_readings import take_request_reading
from apps.tenants.services import authenticate_api_key
from tests.factories.tenants import make_api_key


def test_the_key_query_carries_its_own_tenants_reading_only(tenant, other_tenant):
    ServingState.objects.create(tenant=tenant, catalog_stamp=7, active_revision=2)
    ServingState.objects.create(tenant=other_tenant, catalog_stamp=99, active_revision=5)
    _, raw_key = make_api_key(tenant)
    with CaptureQueriesContext(connection) as captured:
        api_key = authenticate_api_key(raw_key)
    assert api_key is not None
    lookup = captured.captured_queries[0]["sql"]  # the key, its tenant and the reading
    assert "modeling_servingstate" in lookup
    assert all(q["sql"].startswith("UPDATE") for q in captured.captured_queries[1:])
    assert take_request_reading(api_key.tenant, "serving_state") == (None, 2, 7)


def test_a_reading_is_handed_out_once(tenant):
    ServingState.objects.create(tenant=tenant, catalog_stamp=3)
    _, raw_key = make_api_key(tenant)
    api_key = authenticate_api_key(raw_key)
    assert take_request_reading(api_key.tenant, "serving_state") == (None, 0, 3)
    assert take_request_reading(api_key.tenant, "serving_state") is None


def test_a_tenant_without_the_row_reads_nothing_and_a_plain_tenant_has_no_reading(tenant):
    _, raw_key = make_api_key(tenant)
    api_key = authenticate_api_key(raw_key)
    assert take_request_reading(api_key.tenant, "serving_state") == (None, None, None)
    assert take_request_reading(tenant, "serving_state") is None
    assert take_request_reading(api_key.tenant, "no-such-reading") is None
