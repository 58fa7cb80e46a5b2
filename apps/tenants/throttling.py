from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from apps.tenants.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per-key request rate; a key's own ``rate_limit_per_minute`` overrides the default."""

    scope = "api_key"

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if isinstance(api_key, ApiKey) and api_key.rate_limit_per_minute:
            self.rate = f"{api_key.rate_limit_per_minute}/min"
            self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return None  # unauthenticated requests are refused before they cost anything
        return f"throttle:api_key:{api_key.pk}"
