from __future__ import annotations

from apps.tenants.models import ApiKey
from tests.factories.tenants import make_api_key


def test_any_of_matches_like_in(tenant, other_tenant):
    wanted = [make_api_key(tenant, name=f"k{i}")[0] for i in range(3)]
    make_api_key(other_tenant, name="elsewhere")
    prefixes = [k.prefix for k in wanted[:2]] + ["no-such-prefix"]
    found = ApiKey.objects.filter(prefix__any_of=prefixes)
    assert set(found) == set(ApiKey.objects.filter(prefix__in=prefixes))
    assert {k.name for k in found} == {"k0", "k1"}


def test_any_of_an_empty_list_matches_nothing(tenant):
    make_api_key(tenant)
    assert not ApiKey.objects.filter(prefix__any_of=[]).exists()
    assert not ApiKey.objects.filter(pk__any_of=[]).exists()


def test_any_of_works_on_integer_fields(tenant):
    key, _ = make_api_key(tenant)
    assert list(ApiKey.objects.filter(pk__any_of=[key.pk, 10**9])) == [key]
