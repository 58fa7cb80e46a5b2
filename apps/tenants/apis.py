from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from apps.core.apis import TenantApi
from apps.tenants.models import ApiKey, Scope
from apps.tenants.services import revoke_api_key


class ApiRootApi(TenantApi):
    """Who am I: the key's tenant and scopes, and where to go next."""

    class OutputSerializer(serializers.Serializer):
        tenant = serializers.DictField()
        api_key = serializers.DictField()
        links = serializers.DictField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        links = {
            "schema": reverse("api-schema", request=request),
            "docs": reverse("api-docs", request=request),
            "api_keys": reverse("api-key-list", request=request),
        }
        return Response(
            {
                "tenant": {"slug": self.tenant.slug, "name": self.tenant.name},
                "api_key": {"name": self.api_key.name, "prefix": self.api_key.prefix,
                            "scopes": self.api_key.scopes},
                "links": links,
            }
        )


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "created_at", "last_used_at",
                  "expires_at", "revoked_at"]
        read_only_fields = fields


class ApiKeyListApi(TenantApi):
    required_scope = Scope.KEYS_MANAGE

    @extend_schema(responses=ApiKeyOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        from apps.core.pagination import CursorPagination

        paginator = CursorPagination()
        page = paginator.paginate_queryset(ApiKey.objects.for_tenant(self.tenant), request, self)
        return paginator.get_paginated_response(ApiKeyOutputSerializer(page, many=True).data)


class ApiKeyDetailApi(TenantApi):
    required_scope = Scope.KEYS_MANAGE

    def get_key(self, key_id: int) -> ApiKey:
        return get_object_or_404(ApiKey.objects.for_tenant(self.tenant), pk=key_id)

    @extend_schema(responses=ApiKeyOutputSerializer)
    def get(self, request: Request, key_id: int) -> Response:
        return Response(ApiKeyOutputSerializer(self.get_key(key_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, key_id: int) -> Response:
        """Revoke the key. It answers 401 from the next request on."""
        revoke_api_key(api_key=self.get_key(key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
