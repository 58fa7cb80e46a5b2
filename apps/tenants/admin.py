from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin import TenantScopedAdmin, member_roles
from apps.tenants.models import ApiKey, Membership, Scope, Tenant
from apps.tenants.services import create_api_key, revoke_api_key


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_lookup = "pk"
    list_display = ["slug", "name", "default_regime", "is_active", "created_at"]
    search_fields = ["slug", "name"]
    fields = ["slug", "name", "default_regime", "contact_email", "settings", "is_active"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser  # tenants are created by operators

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a tenant is deactivated, never dropped with its audit trail

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if request.user.is_superuser else ["slug", "is_active"]

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if not change:
            from apps.tenants.services import create_tenant

            created = create_tenant(slug=obj.slug, name=obj.name,
                                    default_regime=obj.default_regime,
                                    contact_email=obj.contact_email)
            obj.pk = created.pk
            return
        super().save_model(request, obj, form, change)


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_select_related = ["user", "tenant"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user" and not request.user.is_superuser:
            # Only people already in the member's tenants: the user table spans tenants.
            kwargs["queryset"] = db_field.related_model.objects.filter(
                memberships__tenant_id__in=list(member_roles(request))).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices,
                                       widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "scopes", "expires_at", "rate_limit_per_minute"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    list_display = ["name", "prefix", "tenant", "scopes", "last_used_at", "expires_at",
                    "revoked_at"]
    list_select_related = ["tenant"]
    actions = ["revoke_selected"]
    readonly_fields = ["prefix", "scopes", "created_by", "last_used_at", "revoked_at"]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.readonly_fields if obj else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return [f for f in ApiKeyCreateForm.Meta.fields if f not in self.get_exclude(request)]
        return ["name", "prefix", "scopes", "created_by", "last_used_at", "expires_at",
                "revoked_at", "rate_limit_per_minute"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        self.assign_member_tenant(request, obj)
        api_key, raw_key = create_api_key(
            tenant=obj.tenant, name=obj.name, scopes=form.cleaned_data["scopes"],
            created_by=request.user, expires_at=obj.expires_at,
        )
        if obj.rate_limit_per_minute:
            ApiKey.objects.filter(pk=api_key.pk).update(
                rate_limit_per_minute=obj.rate_limit_per_minute)
        obj.pk = api_key.pk
        messages.warning(request, f"Copy this key now; it will not be shown again: {raw_key}")

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:  # queryset is already scoped to the member's tenants
            if self.has_change_permission(request, api_key):
                revoke_api_key(api_key=api_key)
        self.message_user(request, "Revoked.")
