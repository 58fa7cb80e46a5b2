"""Consent in the admin: purposes and notices are edited here (django-auditlog records each
change); the ledger and current state are read-only proof, searchable by the client site's
subject id (pseudonymized on the fly, never stored)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.consent.models import (
    ConsentRecord,
    ConsentState,
    PrivacyNotice,
    Purpose,
    Source,
    SubjectState,
)
from apps.consent.selectors import count_decisions_by_month
from apps.consent.services import require_consent_renewal, set_restriction
from apps.core.exceptions import ApplicationError
from apps.tenants.admin import (
    SubjectDataAdmin,
    TenantScopedAdmin,
    member_roles,
    writable_tenant_ids,
)
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize

STATS_DAYS = 365


def _form_tenant_id(request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> int | None:
    """The tenant a form's row will belong to: its own, the one picked, or the member's."""
    if obj is not None and obj.tenant_id:
        return int(obj.tenant_id)
    picked = cleaned.get("tenant")
    if picked is not None:
        return int(picked.pk)
    writable = writable_tenant_ids(request)
    return next(iter(writable)) if len(writable) == 1 else None


class _TenantUniqueForm(forms.ModelForm):
    """Checks the per-tenant unique field in the form (the tenant field may be hidden, so
    Django's own unique check would not run and the save would fail with a 500)."""

    unique_field = ""
    request: HttpRequest | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        value = cleaned.get(self.unique_field)
        tenant_id = _form_tenant_id(self.request, self.instance if self.instance.pk else None,
                                    cleaned) if self.request else None
        if value and tenant_id:
            clash = (self._meta.model.objects.for_tenant(tenant_id)
                     .filter(**{self.unique_field: value}).exclude(pk=self.instance.pk))
            if clash.exists():
                self.add_error(self.unique_field, "Already used in this tenant.")
        return cleaned


class PurposeForm(_TenantUniqueForm):
    unique_field = "key"

    class Meta:
        model = Purpose
        fields = ["tenant", "key", "name", "description", "legal_basis", "is_sale_or_sharing",
                  "uses_sensitive_data", "aggregate_only", "default_granted"]


class PrivacyNoticeForm(_TenantUniqueForm):
    unique_field = "version"

    class Meta:
        model = PrivacyNotice
        fields = ["tenant", "version", "effective_at", "purposes", "text"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        tenant_id = _form_tenant_id(self.request, self.instance if self.instance.pk else None,
                                    cleaned) if self.request else None
        purposes = cleaned.get("purposes")
        if purposes is not None and any(p.tenant_id != tenant_id for p in purposes):
            self.add_error("purposes", "Pick purposes of the notice's own tenant.")
        return cleaned


class _RequestFormMixin:
    """Gives the form the request (for its per-tenant checks) and drops the fields the
    tenant mixin excludes (a single-tenant member never sees the tenant field)."""

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        excluded = set(self.get_exclude(request, obj) or [])  # type: ignore[attr-defined]
        fields = super().get_fields(request, obj)  # type: ignore[misc]
        return [f for f in fields if f not in excluded]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)  # type: ignore[misc]
        return type(form.__name__, (form,), {"request": request})


@admin.register(Purpose)
class PurposeAdmin(_RequestFormMixin, TenantScopedAdmin):
    form = PurposeForm
    # The other flags are on the detail page: the list fits 1280 px (issue 17).
    list_display = ["key", "name", "tenant", "legal_basis", "is_sale_or_sharing",
                    "default_granted"]
    list_select_related = ["tenant", "renewal_required_from"]
    search_fields = ["key", "name"]
    fields = ["tenant", "key", "name", "description", "legal_basis", "is_sale_or_sharing",
              "uses_sensitive_data", "aggregate_only", "default_granted",
              "renewal_required_from"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The key is what clients send and the ledger cites: fixed once created. Renewal is
        # set from a notice (the notice's admin action), so it always names a real version.
        return ["key", "renewal_required_from"] if obj else ["renewal_required_from"]


@admin.register(PrivacyNotice)
class PrivacyNoticeAdmin(_RequestFormMixin, TenantScopedAdmin):
    form = PrivacyNoticeForm
    list_display = ["version", "tenant", "effective_at", "covered_purposes"]
    list_select_related = ["tenant"]
    search_fields = ["version"]
    fields = ["tenant", "version", "effective_at", "purposes", "text"]
    actions = ["require_renewal"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PrivacyNotice]:
        return super().get_queryset(request).prefetch_related("purposes")

    @admin.display(description="Purposes")
    def covered_purposes(self, notice: PrivacyNotice) -> str:
        return ", ".join(sorted(p.key for p in notice.purposes.all()))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A notice in effect is what subjects were shown: consents cite it as proof, so it is
        # never edited. A change is a new version.
        if obj is not None and obj.effective_at <= timezone.now():
            return ["tenant", "version", "effective_at", "purposes", "text"]
        return []

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest,
                                 **kwargs: Any) -> Any:
        if db_field.name == "purposes" and not request.user.is_superuser:
            kwargs["queryset"] = Purpose.objects.filter(
                tenant_id__in=writable_tenant_ids(request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.action(description="Require renewal of consents given under earlier notices "
                              "(material change)")
    def require_renewal(self, request: HttpRequest, queryset: QuerySet[PrivacyNotice]) -> None:
        for notice in queryset.select_related("tenant"):
            if not self._may_write(request, notice):
                continue
            try:
                purposes = require_consent_renewal(tenant=notice.tenant, notice=notice,
                                                   actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{notice.version}: {exc.message}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{notice.version}: consents to "
                    f"{', '.join(p.key for p in purposes) or 'no purpose'} given under earlier "
                    "notices now need renewal.", messages.SUCCESS)


class _SubjectSearchMixin:
    """Search by the client site's subject id: it is pseudonymized under each tenant the
    user may see and matched against ``subject_key`` (a pasted key matches too)."""

    search_fields = ["subject_key"]
    search_help_text = "The client site's subject id (or its subject key)."

    @admin.display(description="Subject key", ordering="subject_key")
    def short_subject(self, obj: Any) -> str:
        return f"{obj.subject_key[:12]}…"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str
                           ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        tenants = Tenant.objects.all() if request.user.is_superuser else (
            Tenant.objects.filter(pk__in=list(member_roles(request))))
        keys = {term}
        for tenant in tenants:
            try:
                keys.add(pseudonymize(tenant, term))
            except ApplicationError:
                continue
        return queryset.filter(subject_key__in=keys), False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(_SubjectSearchMixin, SubjectDataAdmin):
    """The ledger: which notice each subject agreed to, when, through which source."""

    change_list_template = "admin/consent/consentrecord/change_list.html"
    list_display = ["captured_at", "short_subject", "tenant", "kind", "purpose", "granted",
                    "level", "notice", "source", "method"]
    list_filter = ["kind", "source", "granted", ("purpose__key", admin.AllValuesFieldListFilter)]
    list_select_related = ["tenant", "purpose", "notice"]
    ordering = ["-captured_at", "-id"]
    date_hierarchy = "captured_at"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        since = timezone.now() - timedelta(days=STATS_DAYS)
        counts = count_decisions_by_month(
            self.get_queryset(request).filter(captured_at__gte=since))
        extra_context = {**(extra_context or {}), "decision_counts": counts}
        return super().changelist_view(request, extra_context)


@admin.register(ConsentState)
class ConsentStateAdmin(_SubjectSearchMixin, SubjectDataAdmin):
    list_display = ["short_subject", "tenant", "purpose", "granted", "notice", "source",
                    "captured_at"]
    list_filter = ["granted", "source", ("purpose__key", admin.AllValuesFieldListFilter)]
    list_select_related = ["tenant", "purpose", "notice"]
    ordering = ["-captured_at"]


@admin.register(SubjectState)
class SubjectStateAdmin(_SubjectSearchMixin, SubjectDataAdmin):
    list_display = ["short_subject", "tenant", "level", "restricted", "objected",
                    "do_not_ask_until", "updated_at"]
    list_filter = ["level", "restricted", "objected"]
    list_select_related = ["tenant"]
    ordering = ["-updated_at"]
    actions = ["lift_restriction"]

    @admin.action(description="Lift the restriction of processing (GDPR Art. 18(3))")
    def lift_restriction(self, request: HttpRequest, queryset: QuerySet[SubjectState]) -> None:
        """The state stays read-only; the lift goes through the consent service, so it is a
        ledger row and an audit entry like every other change. Owners and admins only."""
        writable = writable_tenant_ids(request)
        lifted = refused = 0
        for state in queryset.filter(restricted=True).select_related("tenant"):
            if not (request.user.is_superuser or state.tenant_id in writable):
                refused += 1
                continue
            set_restriction(tenant=state.tenant, subject_key=state.subject_key,
                            restricted=False, source=Source.ADMIN.value, actor=request.user)
            lifted += 1
        if lifted:
            self.message_user(request, f"Restriction lifted for {lifted} subject(s).",
                              messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} subject(s) skipped: your role may not "
                                       "change their tenant's data.", messages.ERROR)
        if not lifted and not refused:
            self.message_user(request, "None of the selected subjects is restricted.",
                              messages.WARNING)
