"""The webhook delivery log is pruned by retention (category ``webhook_deliveries``,
default 30 days): finished deliveries past the period go, recent ones and those still being
retried stay, and another tenant's log is untouched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apps.retention.categories import get_retention_category
from apps.retention.selectors import preview_retention
from apps.retention.services import enforce_retention_now
from apps.webhooks.models import WebhookDelivery
from tests.factories.retention import at, webhook_delivery_at

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
PERIOD = timedelta(days=30)
SECOND = timedelta(seconds=1)


def test_the_category_defaults_to_30_days_and_runs_before_the_audit_entries():
    category = get_retention_category("webhook_deliveries")
    assert category is not None
    assert (category.default_days, category.settable, category.time_based) == (30, True, True)
    assert category.order < get_retention_category("audit_entries").order


def test_old_finished_deliveries_are_removed_and_new_or_unfinished_ones_stay(
        tenant, other_tenant):
    past = NOW - PERIOD - SECOND
    old = [webhook_delivery_at(tenant, past, "succeeded"),
           webhook_delivery_at(tenant, past - PERIOD, "failed")]
    kept = [webhook_delivery_at(tenant, NOW - PERIOD + SECOND),  # inside the period
            webhook_delivery_at(tenant, past, "pending")]         # still being retried
    foreign = webhook_delivery_at(other_tenant, past)

    with at(NOW):
        assert preview_retention(tenant=tenant)["webhook_deliveries"] == 2
        deleted = enforce_retention_now(tenant=tenant)

    assert deleted["webhook_deliveries"] == 2
    remaining = set(WebhookDelivery.objects.for_tenant(tenant).values_list("pk", flat=True))
    assert remaining == {d.pk for d in kept}
    assert not remaining & {d.pk for d in old}
    assert WebhookDelivery.objects.for_tenant(other_tenant).filter(pk=foreign.pk).exists()
