"""Tenant scoping for the Django admin (DESIGN "Tenant scoping").

A member sees, picks and saves only rows of the tenants they belong to; roles decide what
they may change (owner/admin write, analyst/viewer read). Superusers see every tenant.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.forms import ModelForm
from django.http import HttpRequest

from apps.core.models import TenantOwnedModel


def member_roles(request: HttpRequest) -> dict[int, str]:
    """``{tenant_id: role}`` for the logged-in user, computed once per request."""
    cached = getattr(request, "_discreet_member_roles", None)
    if cached is None:
        from apps.tenants.models import Membership

        user = request.user
        cached = (
            dict(Membership.objects.filter(user_id=user.pk).values_list("tenant_id", "role"))
            if user.is_authenticated else {}
        )
        request._discreet_member_roles = cached
    return cached


def writable_tenant_ids(request: HttpRequest) -> set[int]:
    from apps.tenants.models import Membership

    return {t for t, role in member_roles(request).items() if role in Membership.WRITE_ROLES}


class TenantScopedAdminMixin:
    """Mix into a ``ModelAdmin`` of a :class:`TenantOwnedModel` (or of ``Tenant`` itself,
    with ``tenant_lookup = "pk"``)."""

    tenant_lookup = "tenant_id"
    #: Read-only models (ledgers, logs) refuse add/change/delete for everyone.
    read_only = False

    def _tenant_id_of(self, obj: Any) -> int | None:
        return obj.pk if self.tenant_lookup == "pk" else getattr(obj, "tenant_id", None)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        qs = super().get_queryset(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.tenant_lookup}__in": list(member_roles(request))})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and (request.user.is_superuser or bool(member_roles(request)))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if request.user.is_superuser:
            return True
        roles = member_roles(request)
        return bool(roles) if obj is None else self._tenant_id_of(obj) in roles

    def _may_write(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.read_only:
            return False
        if request.user.is_superuser:
            return True
        writable = writable_tenant_ids(request)
        return bool(writable) if obj is None else self._tenant_id_of(obj) in writable

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._may_write(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_write(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_write(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser:
            from apps.tenants.models import Tenant

            related = db_field.related_model
            if related is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(pk__in=writable_tenant_ids(request))
            elif issubclass(related, TenantOwnedModel):
                kwargs["queryset"] = related.objects.filter(
                    tenant_id__in=writable_tenant_ids(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = list(super().get_exclude(request, obj) or [])  # type: ignore[misc]
        # A member of a single tenant never has to pick it: it is set on save.
        if (self.tenant_lookup == "tenant_id" and not request.user.is_superuser
                and len(writable_tenant_ids(request)) == 1):
            exclude.append("tenant")
        return exclude

    def assign_member_tenant(self, request: HttpRequest, obj: Any) -> None:
        """Set a single-tenant member's tenant on a new row; refuse any other tenant."""
        if self.tenant_lookup != "tenant_id" or request.user.is_superuser:
            return
        writable = writable_tenant_ids(request)
        if obj.tenant_id is None and len(writable) == 1:
            obj.tenant_id = next(iter(writable))
        if obj.tenant_id not in writable:
            raise PermissionDenied

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        self.assign_member_tenant(request, obj)
        self._check_same_tenant(obj)
        super().save_model(request, obj, form, change)  # type: ignore[misc]

    def _check_same_tenant(self, obj: Any) -> None:
        """Even a superuser may not link rows of two tenants."""
        tenant_id = self._tenant_id_of(obj)
        for field in obj._meta.concrete_fields:
            if field.is_relation and issubclass(field.related_model, TenantOwnedModel):
                related = getattr(obj, field.name, None)
                if related is not None and related.tenant_id != tenant_id:
                    raise PermissionDenied(f"{field.name} belongs to another tenant")

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))  # type: ignore[misc]
        if request.user.is_superuser and self.tenant_lookup == "tenant_id":
            filters.insert(0, "tenant")
        return filters


class TenantScopedAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    pass


class ReadOnlyTenantScopedAdmin(TenantScopedAdmin):
    read_only = True


class AuditedSubjectDataAdminMixin:
    """Opening subject data in the admin leaves an audit entry (privacy invariant 5): one per
    tenant for a list page (with the number of rows shown), one per object for a detail page.
    Entries name the model and the row, never a raw identifier."""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        response = super().changelist_view(request, extra_context)  # type: ignore[misc]
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            shown: dict[int, int] = {}
            for row in changelist.result_list:
                shown[row.tenant_id] = shown.get(row.tenant_id, 0) + 1
            self._record_access(request, shown)
        return response

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: Any = None) -> Any:
        response = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        if getattr(response, "status_code", None) == 200:
            from django.contrib.admin.utils import unquote

            obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
            if obj is not None:
                self._record_access(request, {obj.tenant_id: 1}, target=obj)
        return response

    def _record_access(self, request: HttpRequest, shown: dict[int, int],
                       target: Any = None) -> None:
        from apps.audit.services import record
        from apps.tenants.models import Tenant

        label = self.model._meta.label  # type: ignore[attr-defined]
        for tenant in Tenant.objects.filter(pk__in=list(shown)):
            record(tenant, "admin.subject_data_viewed", request.user,
                   target if target is not None else (label, ""),
                   {"model": label, "rows_shown": shown[tenant.pk]},
                   subject_key=getattr(target, "subject_key", None))


class SubjectDataAdmin(AuditedSubjectDataAdminMixin, ReadOnlyTenantScopedAdmin):
    """Read-only, tenant-scoped, access-audited: the admin class for ledgers and event data."""
