"""The sub-processor registry in the admin (tenant-scoped, audited by django-auditlog), and
the records of processing (GDPR Art. 30) of each of the member's tenants as JSON and CSV,
linked from the registry's list: ``records-of-processing/<tenant-slug>.json`` and ``.csv``
under the registry's admin URL."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from apps.tenants.admin import TenantScopedAdmin, member_roles
from apps.tenants.models import Tenant
from apps.tenants.scoping import tenant_scope
from apps.transparency.models import SubProcessor
from apps.transparency.selectors import get_records_of_processing, records_to_csv

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


@admin.register(SubProcessor)
class SubProcessorAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "location", "transfer_mechanism", "updated_at"]
    list_select_related = ["tenant"]
    search_fields = ["name", "location"]
    fields = ["tenant", "name", "purpose", "location", "transfer_mechanism", "safeguards"]
    change_list_template = "admin/transparency/subprocessor/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("records-of-processing/<slug:slug>.<str:fmt>",
                 self.admin_site.admin_view(self.records_of_processing),
                 name="transparency_records_of_processing"),
            *super().get_urls(),
        ]

    def _tenants(self, request: HttpRequest) -> list[Tenant]:
        """The tenants whose records the user may download: a member's tenants (any role:
        the records describe the processing, they hold no subject data); every tenant for
        a superuser."""
        tenants = Tenant.objects.order_by("slug")
        if request.user.is_superuser:
            return list(tenants)
        return list(tenants.filter(pk__in=sorted(member_roles(request))))

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        links = [{
            "tenant": tenant,
            "json": reverse("admin:transparency_records_of_processing",
                            kwargs={"slug": tenant.slug, "fmt": "json"}),
            "csv": reverse("admin:transparency_records_of_processing",
                           kwargs={"slug": tenant.slug, "fmt": "csv"}),
        } for tenant in self._tenants(request)]
        return super().changelist_view(request, {**(extra_context or {}),
                                                 "records_links": links})

    def records_of_processing(self, request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
        if fmt not in FORMATS:
            raise Http404
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenant = next((t for t in self._tenants(request) if t.slug == slug), None)
        if tenant is None:  # another tenant's, or none: the same answer
            raise Http404
        with tenant_scope(tenant):
            records = get_records_of_processing(tenant=tenant)
        if fmt == "csv":
            body = records_to_csv(records)
        else:
            body = json.dumps(records, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type=FORMATS[fmt])
        response["Content-Disposition"] = (
            f'attachment; filename="records-of-processing-{tenant.slug}.{fmt}"')
        response["Cache-Control"] = "no-store"
        return response

    records_of_processing.short_description = _("Records of processing")  # type: ignore[attr-defined]
