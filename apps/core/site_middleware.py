"""The site's middleware, skipped on the API's routes (issue 18; README "Serving at web
speed").

The API (``API_PATH_PREFIXES``, default ``/api/v1/``) authenticates every request with an
API key and sets no cookie: it has no use for sessions, CSRF tokens, Django's
authentication, the admin's tenant scope or messages. Those middleware classes cost every
API request their ``process_request``/``process_response`` (and CSRF its
``process_view``) for nothing, so the classes below, subclasses of Django's that
``MIDDLEWARE`` names instead, pass an API request straight through:

* no session is loaded or saved and no session cookie is read or set;
* no CSRF cookie is read, rotated or set, and nothing is checked (DRF's views are
  ``csrf_exempt`` anyway: a key in a header is not ambient authority);
* ``request.user`` is DRF's principal, set by the API-key authentication, never a session
  user; the request has no ``session``, ``auser`` or ``_messages`` attribute.

The admin, the privacy portal, the API docs and every other page keep all of them, in the
same order as before. What every route keeps is the rest of ``MIDDLEWARE``: security
headers, the body-size limit, static files, ``CommonMiddleware`` (allowed hosts), framing
and Content-Security-Policy headers, and django-auditlog's context. Being subclasses,
Django's admin and deployment checks still find the classes they look for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core import checks
from django.http import HttpRequest, HttpResponseBase
from django.middleware import csrf


def is_api_request(request: HttpRequest) -> bool:
    """Whether ``request`` is for an API route (``API_PATH_PREFIXES``)."""
    return request.path_info.startswith(tuple(settings.API_PATH_PREFIXES))


class SiteOnlyMixin:
    """Runs the middleware for site requests only; an API request goes straight on."""

    get_response: Callable[[HttpRequest], Any]

    def __call__(self, request: HttpRequest) -> Any:
        if is_api_request(request):
            return self.get_response(request)  # a coroutine under ASGI: passed on as is
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(SiteOnlyMixin, sessions_middleware.SessionMiddleware):
    pass


class AuthenticationMiddleware(SiteOnlyMixin, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(SiteOnlyMixin, messages_middleware.MessageMiddleware):
    pass


class CsrfViewMiddleware(SiteOnlyMixin, csrf.CsrfViewMiddleware):
    def process_view(self, request: HttpRequest, callback: Callable[..., Any],
                     callback_args: Any, callback_kwargs: Any) -> HttpResponseBase | None:
        if is_api_request(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


def check_csrf_middleware(**kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: Django's own warning (security.W003, silenced in the settings)
    looks for its class by name; ours is the site-only subclass."""
    names = set(settings.MIDDLEWARE)
    if not names & {f"{__name__}.CsrfViewMiddleware", "django.middleware.csrf.CsrfViewMiddleware"}:
        return [checks.Warning(
            "No CSRF middleware: the admin's and the portal's forms are unprotected.",
            hint=f"Add '{__name__}.CsrfViewMiddleware' to MIDDLEWARE.", id="core.W003")]
    return []
