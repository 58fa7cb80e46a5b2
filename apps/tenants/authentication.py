"""``Authorization: Bearer <api key>`` for the REST API. Sets ``request.tenant``."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.tenants.models import ApiKey


class ApiKeyPrincipal:
    """The authenticated caller of an API request: a tenant's key, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        from apps.tenants.services import authenticate_api_key

        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, raw_key = header.partition(" ")
        if keyword.lower() != self.keyword.lower() or not raw_key.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        api_key = authenticate_api_key(raw_key.strip())
        if api_key is None:
            # One message for unknown, revoked and expired keys: nothing to probe.
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        request.tenant = api_key.tenant
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


def request_api_key(request: Request) -> Any:
    return request.auth if isinstance(request.auth, ApiKey) else None
