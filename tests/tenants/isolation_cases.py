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


def _make_webhook(owner: Tenant, url: str = "https://owner-hook.example/in"):
    from apps.tenants.crypto import encrypt_secret
    from apps.webhooks.models import EventType, WebhookEndpoint
    from apps.webhooks.services import signing

    # Created directly: the service would resolve the owner's (unresolvable) host.
    return WebhookEndpoint.objects.create(
        tenant=owner, url=url, events=[EventType.PRIVACY_REQUEST_COMPLETED],
        description="owner-secret-webhook",
        secret_ciphertext=encrypt_secret(signing.new_secret().encode()))


@isolation_case("webhook-list")
def webhook_list(owner: Tenant) -> IsolationCase:
    endpoint = _make_webhook(owner)
    return IsolationCase(target=Probe(), markers=(endpoint.url, "owner-secret-webhook"))


@isolation_case("webhook-list:post")
def webhook_create(owner: Tenant) -> IsolationCase:
    """A's key registers an endpoint: it lands in A's tenant, never in B's."""
    from apps.webhooks.models import WebhookEndpoint

    before = WebhookEndpoint.objects.for_tenant(owner).count()
    return IsolationCase(
        target=Probe(method="post", body={"url": "https://127.0.0.1/hook",
                                          "events": ["model.activated"]}),
        markers=(owner.slug,),
        intact=lambda: WebhookEndpoint.objects.for_tenant(owner).count() == before,
    )


@isolation_case("webhook-detail")
def webhook_detail(owner: Tenant) -> IsolationCase:
    from apps.webhooks.models import WebhookEndpoint

    endpoint = _make_webhook(owner)
    missing_id = (WebhookEndpoint.all_tenants.order_by("-pk").values_list("pk", flat=True)
                  .first() or 0) + 1000
    return IsolationCase(
        target=Probe(kwargs={"webhook_id": endpoint.pk}),
        missing=Probe(kwargs={"webhook_id": missing_id}),
        markers=(endpoint.url, "owner-secret-webhook"),
        intact=lambda: WebhookEndpoint.objects.for_tenant(owner).get(
            pk=endpoint.pk).deleted_at is None,
    )


@isolation_case("webhook-detail:delete")
def webhook_delete(owner: Tenant) -> IsolationCase:
    case = webhook_detail(owner)
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
