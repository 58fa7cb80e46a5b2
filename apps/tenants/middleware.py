"""The admin's tenant scope (DESIGN "Tenant scoping"): a member's admin request runs in a
scope over the tenants they belong to, set once before the view and reset when the
response is done (also after an exception). Superusers get no scope: the admin mixin
shows them every tenant through ``all_tenants``. Site only: API requests pass through
(their scope is the key's tenant, set by ``TenantApi``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from apps.core.site_middleware import is_api_request
from apps.tenants.admin import member_roles
from apps.tenants.scoping import enter_tenant_scope, exit_tenant_scope

_SCOPE_ATTRIBUTE = "_discreet_tenant_scope_token"


class AdminTenantScopeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if is_api_request(request):  # site only (apps/core/site_middleware.py)
            return self.get_response(request)
        try:
            return self.get_response(request)  # the view and its template rendering
        finally:
            token = request.__dict__.pop(_SCOPE_ATTRIBUTE, None)
            if token is not None:
                exit_tenant_scope(token)

    def process_view(self, request: HttpRequest, view_func: Callable[..., Any],
                     view_args: Any, view_kwargs: Any) -> None:
        match = request.resolver_match
        if is_api_request(request) or match is None or "admin" not in match.app_names:
            return
        user = request.user
        if user.is_authenticated and not user.is_superuser:
            setattr(request, _SCOPE_ATTRIBUTE, enter_tenant_scope(*member_roles(request)))
