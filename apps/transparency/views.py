"""The public "how our recommendations work" page (DSA Art. 27: the main parameters of a
recommender system in plain words) at ``/privacy/<tenant-slug>/how-recommendations-work``.

No login, server-rendered, no script (CSP: nothing inline but styles). It is rebuilt from
the live configuration on every request and served with ``Cache-Control: no-cache`` and an
``ETag`` of its content: caches may keep it, but must revalidate, and a change of the
schema, the model or a policy changes the content and so the ETag (never stale)."""

from __future__ import annotations

import hashlib

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from apps.privacy.selectors import get_language_switcher, get_portal_language
from apps.tenants.models import Tenant
from apps.tenants.scoping import tenant_scope
from apps.transparency.selectors import get_active_tenant, get_transparency_report


def _finish(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-cache"
    patch_vary_headers(response, ("Accept-Language", "Cookie"))
    return response


@require_safe
def how_recommendations_work(request: HttpRequest, slug: str) -> HttpResponse:
    """In the portal's language for this request (the switcher's cookie,
    ``Accept-Language``, the tenant's default, English: ``get_portal_language``)."""
    tenant = get_active_tenant(slug=slug)
    with translation.override(get_portal_language(request, tenant)):
        response = _page(request, tenant)
        response.setdefault("Content-Language", translation.get_language())
    return _finish(response)


def _page(request: HttpRequest, tenant: Tenant | None) -> HttpResponse:
    if tenant is None:
        return render(request, "transparency/not_found.html", {
            **get_language_switcher(request, tenant),
            "title": _("Page not found"),
            "text": _("There is no transparency page at this address.")}, status=404)
    with tenant_scope(tenant):
        report = get_transparency_report(tenant=tenant)
        response = render(request, "transparency/how_recommendations_work.html",
                          {**get_language_switcher(request, tenant), "tenant": tenant,
                           "report": report})
    etag = f'"{hashlib.sha256(response.content).hexdigest()[:32]}"'
    response["ETag"] = etag
    return get_conditional_response(request, etag=etag, response=response)
