"""One error shape for the whole API (STYLE S13):
``{"error": {"code": str, "message": str, "details": {...}}}``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger("core.api")


class ApplicationError(Exception):
    """A domain failure with a machine-readable code, mapped to an HTTP status by the API."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        status_code: int = status.HTTP_400_BAD_REQUEST,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.details = details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "invalid",
}


class RequestBodyTooLarge(ApplicationError):  # noqa: N818 - reads as the condition
    """A request body over its size limit (``API_MAX_BODY_BYTES``; README "Security")."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than {limit} bytes.", code="request_too_large",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, details={"max_bytes": limit})


def _dependency_errors() -> tuple[tuple[type[BaseException], str], ...]:
    """(error class, dependency) pairs: errors that mean a service we depend on is down or
    unreachable, not that our code is wrong. Imported lazily: redis is optional."""
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError

    pairs: list[tuple[type[BaseException], str]] = [
        (OperationalError, "database"), (InterfaceError, "database"), (BrokerError, "broker")]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is installed wherever it is configured
        return tuple(pairs)
    return (*pairs, (RedisConnectionError, "redis"), (RedisTimeoutError, "redis"))


def unavailable_dependency(exc: BaseException | None) -> str | None:
    """Which dependency ``exc`` (or the error it was explicitly raised from) says is down.
    Domain errors never are: code that turns an outage into an ``ApplicationError`` chose
    its answer."""
    seen = 0
    while exc is not None and seen < 4 and not isinstance(exc, ApplicationError):
        for error_class, dependency in _dependency_errors():
            if isinstance(exc, error_class):
                return dependency
        exc = exc.__cause__
        seen += 1
    return None


def service_unavailable_body(dependency: str) -> dict[str, Any]:
    return error_body("service_unavailable",
                      "A service this request needs is unavailable; retry later.",
                      {"dependency": dependency})


def retry_after_seconds() -> str:
    from django.conf import settings

    return str(getattr(settings, "DEPENDENCY_RETRY_AFTER_SECONDS", 30))


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        # 503, not 500: the request may well succeed once the dependency is back.
        logger.warning("core.dependency_unavailable dependency=%s error=%s", dependency,
                       type(exc).__name__)
        return Response(service_unavailable_body(dependency), status=503,
                        headers={"Retry-After": retry_after_seconds()})
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    code = next((c for k, c in _CODES.items() if isinstance(exc, k)), "error")
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body(code, "The request is not valid.", details)
    else:
        detail = exc.detail
        specific = getattr(detail, "code", None)
        if specific and specific not in {"error", "invalid", code}:
            code = str(specific)
        response.data = error_body(code, str(detail))
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    """Django's 500 handler, for every view outside DRF (portal, admin, health) and for any
    middleware: Django calls it while handling the exception, so ``sys.exc_info()`` names
    it. A dependency that is down answers 503 with ``Retry-After``."""
    exc = sys.exc_info()[1]
    if isinstance(exc, RequestBodyTooLarge):  # read by a form or a middleware (CSRF)
        return JsonResponse(error_body(exc.code, exc.message, exc.details), status=413)
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        response = JsonResponse(service_unavailable_body(dependency), status=503)
        response["Retry-After"] = retry_after_seconds()
        return response
    return JsonResponse(error_body("server_error", "Internal error."), status=500)
