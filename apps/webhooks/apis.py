"""``/api/v1/webhooks``: a tenant's webhook endpoints (README "Webhooks"). Scope
``settings:manage``. The signing secret is in the answer to the POST only."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.serializers import StrictCharField, StrictSerializer
from apps.tenants.apis import TenantApi
from apps.tenants.models import Scope
from apps.webhooks.models import EventType, WebhookEndpoint
from apps.webhooks.selectors import get_webhook_endpoint, list_webhook_endpoints
from apps.webhooks.services import create_webhook_endpoint, delete_webhook_endpoint


class WebhookEndpointOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    url = serializers.URLField()
    description = serializers.CharField(allow_blank=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices))
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class WebhookEndpointCreatedSerializer(WebhookEndpointOutputSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (`whsec_…`). Shown this once: store it now.")


class WebhookListApi(TenantApi):
    """The tenant's webhook endpoints (GET), or register one (POST)."""

    required_scope = Scope.SETTINGS_MANAGE

    class InputSerializer(StrictSerializer):
        """An endpoint to register: its URL, the event types it receives, a note."""

        url = serializers.URLField(max_length=2000, help_text=(
            "An https URL whose host resolves to public addresses only."))
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=EventType.choices), min_length=1,
            max_length=len(EventType.values))
        description = StrictCharField(max_length=200, required=False, allow_blank=True)

    @extend_schema(
        operation_id="webhooks_list",
        parameters=[
            OpenApiParameter("cursor", str, description="The `next`/`previous` link's cursor."),
            OpenApiParameter("page_size", {"type": "integer", "minimum": 1},
                             description="Endpoints per page (default 50, at most 500)."),
        ],
        responses=inline_serializer("PaginatedWebhookEndpointList", {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": WebhookEndpointOutputSerializer(many=True),
        }),
    )
    def get(self, request: Request) -> Response:
        """Newest first, a page at a time (cursor pagination)."""
        from apps.core.pagination import CursorPagination

        paginator = CursorPagination()
        page = paginator.paginate_queryset(list_webhook_endpoints(tenant=self.tenant),
                                           request, self)
        return paginator.get_paginated_response(
            WebhookEndpointOutputSerializer(page, many=True).data)

    @extend_schema(operation_id="webhooks_create", request=InputSerializer,
                   responses={201: WebhookEndpointCreatedSerializer})
    def post(self, request: Request) -> Response:
        """Register an endpoint. Refused (400) unless the URL is https (in production) and
        its host resolves to public addresses only (`invalid_webhook_url`,
        `webhook_address_refused`, `webhook_host_unresolvable`)."""
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        body = serializer.validated_data
        endpoint, secret = create_webhook_endpoint(
            tenant=self.tenant, url=body["url"], events=body["events"],
            description=body.get("description", ""))
        data = WebhookEndpointOutputSerializer(endpoint).data
        return Response({**data, "secret": secret}, status=status.HTTP_201_CREATED)


class WebhookDetailApi(TenantApi):
    """One webhook endpoint of the tenant (GET), or delete it (DELETE)."""

    required_scope = Scope.SETTINGS_MANAGE

    def get_endpoint(self, webhook_id: int) -> WebhookEndpoint:
        return get_webhook_endpoint(tenant=self.tenant, endpoint_id=webhook_id)

    @extend_schema(operation_id="webhooks_retrieve", responses=WebhookEndpointOutputSerializer)
    def get(self, request: Request, webhook_id: int) -> Response:
        """The endpoint (never its secret)."""
        return Response(WebhookEndpointOutputSerializer(self.get_endpoint(webhook_id)).data)

    @extend_schema(operation_id="webhooks_destroy", responses={204: None})
    def delete(self, request: Request, webhook_id: int) -> Response:
        """Delete the endpoint: nothing more is sent to it (its delivery log is kept)."""
        delete_webhook_endpoint(endpoint=self.get_endpoint(webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
