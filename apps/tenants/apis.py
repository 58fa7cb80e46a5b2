"""The base every tenant API view inherits (STYLE S5), and the tenant's own API views."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from django.http import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.metadata import SimpleMetadata
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from apps.tenants.models import ApiKey, Scope, Tenant
from apps.tenants.permissions import ANY_VALID_KEY, HasScope
from apps.tenants.scoping import enter_tenant_scope, exit_tenant_scope
from apps.tenants.services import revoke_api_key, update_tenant_settings


class StaticMetadata(SimpleMetadata):
    """``OPTIONS``: the view's name, description and media types only. DRF's default would
    also describe the write actions, which reads the object for generic views; an OPTIONS
    answer must be the same for every key and every object (``HasScope``)."""

    def determine_actions(self, request: Request, view: Any) -> dict[str, Any]:
        return {}


class TenantApi(APIView):
    """Resolves the tenant once, from authentication; subclasses cannot override that.
    The handler runs inside that tenant's scope (``apps.tenants.scoping``): set after
    authentication and permission checks, reset when the request is done, also when it
    raised.

    ``required_scope`` names the API-key scope the view needs (or a dict per HTTP method;
    ``ANY_VALID_KEY`` for every key). A view that declares none is refused on every method.
    """

    permission_classes = [IsAuthenticated, HasScope]
    metadata_class = StaticMetadata
    required_scope: ClassVar[str | dict[str, str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "resolve_tenant" in cls.__dict__ or "tenant" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: tenant resolution is not per-view")

    @cached_property
    def tenant(self) -> Tenant:
        return self.resolve_tenant()

    @property
    def api_key(self) -> ApiKey:
        return self.request.auth

    def resolve_tenant(self) -> Tenant:
        tenant = getattr(self.request.auth, "tenant", None)
        if tenant is None:
            raise exceptions.NotAuthenticated()
        return tenant

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        self._tenant_scope_token = enter_tenant_scope(self.tenant)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            token = self.__dict__.pop("_tenant_scope_token", None)
            if token is not None:
                exit_tenant_scope(token)


class ApiRootApi(TenantApi):
    """Who am I: the key's tenant and scopes, and where to go next."""

    required_scope = ANY_VALID_KEY

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

    @extend_schema(
        operation_id="api_keys_list",
        parameters=[
            OpenApiParameter("cursor", str, description="The `next`/`previous` link's cursor."),
            OpenApiParameter("page_size", {"type": "integer", "minimum": 1},
                             description="Keys per page (default 50, at most 500)."),
        ],
        responses=inline_serializer("PaginatedApiKeyList", {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": ApiKeyOutputSerializer(many=True),
        }),
    )
    def get(self, request: Request) -> Response:
        """The tenant's keys, newest first, a page at a time (cursor pagination)."""
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
        """One key of the tenant. A revoked key stays readable, with ``revoked_at`` set, so
        the tenant can see which key was revoked when; it no longer authenticates."""
        return Response(ApiKeyOutputSerializer(self.get_key(key_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, key_id: int) -> Response:
        """Revoke the key. It answers 401 from the next request on; the key's record stays
        readable (``revoked_at``) for the tenant's own audit."""
        revoke_api_key(api_key=self.get_key(key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SettingsApi(TenantApi):
    """The tenant's settings (one declaration each: ``apps.core.tenant_settings``). ``GET``
    gives every setting's effective value, which are set (not defaults), and the
    declarations (type, range or choices, default, help). ``PATCH`` takes
    ``{name: value}`` (``null``: back to the default), all or nothing; an unknown name or a
    bad value is a 400 naming the field."""

    required_scope = Scope.SETTINGS_MANAGE

    class OutputSerializer(serializers.Serializer):
        settings = serializers.DictField()
        customized = serializers.ListField(child=serializers.CharField())
        declarations = serializers.DictField()

    def _answer(self) -> Response:
        from apps.core.tenant_settings import effective_settings, tenant_settings

        declared = tenant_settings()
        stored = self.tenant.settings
        return Response({
            "settings": effective_settings(stored),
            "customized": [s.name for s in declared if s.name in stored],
            "declarations": {s.name: s.describe() for s in declared},
        })

    @extend_schema(operation_id="settings_retrieve", responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return self._answer()

    @extend_schema(operation_id="settings_partial_update",
                   request={"application/json": {"type": "object",
                                                 "additionalProperties": True}},
                   responses=OutputSerializer)
    def patch(self, request: Request) -> Response:
        update_tenant_settings(tenant=self.tenant, changes=request.data)
        return self._answer()
