"""The base every tenant API view inherits (STYLE S5): the tenant comes from the API key."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from apps.tenants.models import ApiKey, Tenant
from apps.tenants.permissions import HasScope


class TenantApi(APIView):
    """Resolves the tenant once, from authentication; subclasses cannot override that.

    ``required_scope`` names the API-key scope the view needs (or a dict per HTTP method).
    """

    permission_classes = [IsAuthenticated, HasScope]
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
