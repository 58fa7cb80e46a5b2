"""Which API-key scope a request needs (README "Security"). Fails closed on every method:

* ``HEAD`` is checked as ``GET``: Django answers it with the GET handler, so it reads (and
  its ``Content-Length`` tells) whatever GET would.
* ``OPTIONS`` needs a valid key and no scope. Its answer (the view's name and description,
  the media types) is the same for every key and every object, and writes nothing.
* A method the view handles but its ``required_scope`` does not map is refused (403
  ``missing_scope``); a method it does not handle is left to DRF's 405, nothing runs.
* A view that declares no ``required_scope`` is refused on every method; ``ANY_VALID_KEY``
  is the explicit declaration that every valid key may call it.

``tests/tenants/test_scopes.py`` walks every route x method x scope from the URLconf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from apps.tenants.models import ApiKey

ANY_VALID_KEY: Final = "any-valid-key"  # not a Scope: a key cannot be given it


def handles(view: Any, method: str) -> bool:
    """Whether ``view`` has a handler for ``method`` (else DRF answers 405)."""
    name = method.lower()
    return name in getattr(view, "http_method_names", ()) and hasattr(view, name)


def required_scope_for(view: Any, method: str) -> str | None:
    """The scope ``method`` needs on ``view``: a :class:`~apps.tenants.models.Scope`,
    :data:`ANY_VALID_KEY`, or ``None`` when nothing is declared (refused)."""
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    required = getattr(view, "required_scope", None)
    if isinstance(required, Mapping):
        return required.get(method)
    return required


class HasScope(permissions.BasePermission):
    """The key must carry the scope the view's ``required_scope`` names for the method: one
    scope for every method, or a dict per method (see the module docstring)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated()
        method = (request.method or "").upper()
        if method == "OPTIONS" or not handles(view, method):
            return True
        required = required_scope_for(view, method)
        if required is None:
            raise exceptions.PermissionDenied(detail=exceptions.ErrorDetail(
                f"No API key may use {method} on this route.", code="missing_scope"))
        if required != ANY_VALID_KEY and required not in api_key.scopes:
            raise exceptions.PermissionDenied(
                detail=exceptions.ErrorDetail(
                    f"This API key lacks the '{required}' scope.", code="missing_scope"
                )
            )
        return True
