from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apps.tenants.models import ApiKey, Membership, Tenant


def _run(*args: str, **options: object) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def _works(raw_key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/api/v1/").status_code


def test_create_tenant_makes_the_owner_a_scoped_staff_member(db):
    _run("create_tenant", "acme", name="Acme", owner_email="boss@acme.example", password="pw")
    tenant = Tenant.objects.get(slug="acme")
    membership = Membership.objects.for_tenant(tenant).select_related("user").get()
    assert membership.role == Membership.Role.OWNER
    assert membership.user.is_staff
    assert not membership.user.is_superuser
    with pytest.raises(CommandError, match="already exists"):
        _run("create_tenant", "acme", name="Again", owner_email="x@acme.example")


def test_create_api_key_prints_a_working_key_alone_on_the_last_line(db):
    _run("create_tenant", "acme", name="Acme", owner_email="boss@acme.example")
    raw_key = _run("create_api_key", "acme", name="site", scopes="events:write,consent:write"
                   ).strip().splitlines()[-1]
    assert raw_key.startswith("dsk_")
    assert _works(raw_key) == 200
    assert ApiKey.all_tenants.get(name="site").scopes == ["consent:write", "events:write"]


@pytest.mark.parametrize(("args", "message"), [
    (("nope",), "No tenant"),
    (("acme",), "Unknown scope"),
])
def test_create_api_key_refuses_bad_input(db, args, message):
    _run("create_tenant", "acme", name="Acme", owner_email="boss@acme.example")
    with pytest.raises(CommandError, match=message):
        _run("create_api_key", *args, name="site", scopes="events:write,bogus")


def test_seed_demo_is_repeatable_and_each_run_prints_a_fresh_working_key(db):
    first = _run("seed_demo").strip().splitlines()
    second = _run("seed_demo").strip().splitlines()
    assert any("/admin/" in line for line in first)
    assert any("owner@demo.example" in line for line in first)
    assert _works(second[-1]) == 200
    assert _works(first[-1]) == 401  # the earlier demo key was revoked
    assert Tenant.objects.filter(slug="demo").count() == 1
