"""Reads of webhook endpoints and deliveries, always tenant-scoped (STYLE S4)."""

from __future__ import annotations

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
