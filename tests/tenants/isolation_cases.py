from __future__ import annotations

from apps.tenants.models import ApiKey, Tenant
from tests.factories.tenants import make_api_key
from tests.isolation import IsolationCase, Probe, isolation_case


@isolation_case("api-root")
def api_root(owner: Tenant) -> IsolationCase:
    return IsolationCase(target=Probe(), markers=(owner.slug, owner.name))


@isolation_case("api-key-list")
def api_key_list(owner: Tenant) -> IsolationCase:
    key, _ = make_api_key(owner, name="owner-secret-key-name")
    return IsolationCase(target=Probe(), markers=(key.prefix, "owner-secret-key-name"))


@isolation_case("api-key-detail")
def api_key_detail(owner: Tenant) -> IsolationCase:
    key, _ = make_api_key(owner, name="owner-detail-key")
    missing_id = (ApiKey.all_tenants.order_by("-pk").values_list("pk", flat=True).first()
                  or 0) + 1000
    return IsolationCase(
        target=Probe(kwargs={"key_id": key.pk}),
        missing=Probe(kwargs={"key_id": missing_id}),
        markers=(key.prefix, "owner-detail-key"),
        intact=lambda: ApiKey.objects.for_tenant(owner).get(pk=key.pk).revoked_at is None,
    )


@isolation_case("api-key-detail:delete")
def api_key_revoke(owner: Tenant) -> IsolationCase:
    case = api_key_detail(owner)
    case.target.method = case.missing.method = "delete"  # type: ignore[union-attr]
    return case


@isolation_case("tenant-settings")
def tenant_settings_read(owner: Tenant) -> IsolationCase:
    owner.settings = {**owner.settings, "privacy_holidays": ["2031-01-07"],
                      "dp_epsilon": 0.123457}
    owner.save()
    return IsolationCase(target=Probe(), markers=("2031-01-07", "0.123457"))


@isolation_case("tenant-settings:patch")
def tenant_settings_write(owner: Tenant) -> IsolationCase:
    tenant_settings_read(owner)
    before = dict(Tenant.objects.get(pk=owner.pk).settings)
    return IsolationCase(
        target=Probe(method="patch", body={"dp_epsilon": 2.5}),
        markers=("2031-01-07", "0.123457"),
        intact=lambda: Tenant.objects.get(pk=owner.pk).settings == before,
    )
