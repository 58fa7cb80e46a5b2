"""Reads of webhook endpoints and deliveries, always tenant-scoped (STYLE S4)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from apps.tenants.models import Tenant
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint


def list_webhook_endpoints(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.for_tenant(tenant).live()


def get_webhook_endpoint(*, tenant: Tenant, endpoint_id: int) -> WebhookEndpoint:
    """The tenant's live endpoint, or 404 (a foreign or deleted one alike)."""
    return get_object_or_404(list_webhook_endpoints(tenant=tenant), pk=endpoint_id)


def list_webhook_deliveries(*, tenant: Tenant) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.for_tenant(tenant).select_related("endpoint")


def list_finished_webhook_deliveries_before(*, tenant: Tenant,
                                            cutoff: datetime) -> QuerySet[WebhookDelivery]:
    """The tenant's deliveries created before ``cutoff`` that are finished (succeeded or
    failed): what retention prunes (category ``webhook_deliveries``). One still being sent
    or retried is never pruned."""
    return WebhookDelivery.objects.for_tenant(tenant).filter(
        created_at__lt=cutoff,
        status__in=(WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED))
