from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from apps.tenants.models import ApiKey


class HasScope(permissions.BasePermission):
    """The key must carry the view's ``required_scope`` (a dict per HTTP method also works)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        required = getattr(view, "required_scope", None)
        if isinstance(required, dict):
            required = required.get(request.method)
        if required is None:
            return True
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated()
        if required not in api_key.scopes:
            raise exceptions.PermissionDenied(
                detail=exceptions.ErrorDetail(
                    f"This API key lacks the '{required}' scope.", code="missing_scope"
                )
            )
        return True
