"""Public edges: the landing page at ``/`` and the JSON 404 for any unknown ``/api/`` path."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from apps.core.exceptions import error_body
from apps.tenants.models import Tenant

DEMO_SLUG = "demo"


def landing(request: HttpRequest) -> HttpResponse:
    """A small page linking to the console, the API docs and the privacy portal."""
    # Only the demo tenant is named: a public page never lists the platform's tenants.
    demo = Tenant.objects.filter(slug=DEMO_SLUG, is_active=True).exists()
    return render(request, "console/landing.html", {"demo_slug": DEMO_SLUG if demo else None})


@csrf_exempt  # no state changes: every method gets the same 404
def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any path under /api/ that no API route matches: 404 in the shared error shape
    (also with DEBUG on, where Django's 404 handler would show its HTML page)."""
    return JsonResponse(error_body("not_found", "Not found."), status=404)
