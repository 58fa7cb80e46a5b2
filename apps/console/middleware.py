"""The admin's script policy (README "Security").

The theme (django-unfold) runs Alpine.js, which evaluates its ``x-data`` attributes with
``Function``: without ``'unsafe-eval'`` every menu, tab and filter of the admin is dead
(unfoldadmin/django-unfold#2129). Only the pages drawn with the theme get it (the admin, and
the invitation page a new member accepts on); every other page keeps
``script-src 'self'``, and no page anywhere may run an inline or foreign script."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

THEMED_PREFIXES = ("/admin/", "/invitations/")


class AdminScriptPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.path.startswith(THEMED_PREFIXES):
            # Read by django-csp's middleware, which sits outside this one.
            response._csp_update = {"script-src": ["'unsafe-eval'"]}  # type: ignore[attr-defined]
        return response
