from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.exceptions import ApplicationError
from apps.tenants.models import ApiKey, Scope
from apps.tenants.services import create_api_key, revoke_api_key
from tests.db_search import columns_containing
from tests.factories.tenants import make_api_key


def _client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def test_only_a_hash_of_the_key_is_stored(tenant):
    _, raw_key = make_api_key(tenant)
    secret_part = raw_key.split("_", 2)[2]  # the random part may itself contain "_"
    assert not columns_containing(secret_part)
    assert not columns_containing(raw_key)


def test_a_valid_key_authenticates_and_records_use(tenant):
    api_key, raw_key = make_api_key(tenant)
    response = _client(raw_key).get("/api/v1/")
    assert response.status_code == 200
    assert response.json()["tenant"]["slug"] == tenant.slug
    assert ApiKey.objects.for_tenant(tenant).get(pk=api_key.pk).last_used_at is not None


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer nonsense", "Token abc",
                                    "Bearer dsk_00000000_notarealkey"])
def test_missing_or_bad_keys_get_401_in_the_error_shape(db, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_tampered_key_with_a_real_prefix_is_refused(tenant):
    _, raw_key = make_api_key(tenant)
    assert _client(raw_key[:-2] + "xx").get("/api/v1/").status_code == 401


def test_revoked_keys_get_401(tenant):
    api_key, raw_key = make_api_key(tenant)
    for _ in range(7):  # on PostgreSQL the key lookup is a prepared statement by now
        assert _client(raw_key).get("/api/v1/").status_code == 200
    revoke_api_key(api_key=api_key)
    response = _client(raw_key).get("/api/v1/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_expired_keys_get_401(tenant):
    _, raw_key = make_api_key(tenant, expires_at=timezone.now() + timedelta(hours=1))
    assert _client(raw_key).get("/api/v1/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert _client(raw_key).get("/api/v1/").status_code == 401


def test_a_missing_scope_gets_403_with_its_code(tenant):
    _, raw_key = make_api_key(tenant, scopes=[Scope.EVENTS_WRITE])
    response = _client(raw_key).get("/api/v1/api-keys")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert "keys:manage" in response.json()["error"]["message"]


def test_unknown_scopes_are_refused(tenant):
    with pytest.raises(ApplicationError) as err:
        create_api_key(tenant=tenant, name="x", scopes=["events:write", "root:all"])
    assert err.value.code == "invalid_scope"


def test_keys_are_listed_and_revoked_through_the_api(tenant, api):
    other, other_raw = make_api_key(tenant, name="to-revoke")
    listed = api.get("/api/v1/api-keys").json()
    assert other.prefix in {k["prefix"] for k in listed["results"]}
    assert "key_hash" not in listed["results"][0]
    assert api.delete(f"/api/v1/api-keys/{other.pk}").status_code == 204
    assert _client(other_raw).get("/api/v1/").status_code == 401


def test_throttling_is_per_key(tenant, settings):
    limited, limited_raw = make_api_key(tenant, name="limited")
    ApiKey.objects.for_tenant(tenant).filter(pk=limited.pk).update(rate_limit_per_minute=2)
    _, free_raw = make_api_key(tenant, name="free")
    from django.core.cache import cache

    cache.clear()
    client = _client(limited_raw)
    assert [client.get("/api/v1/").status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/v1/").json()["error"]["code"] == "throttled"
    assert _client(free_raw).get("/api/v1/").status_code == 200
