"""Tenant scoping for the Django admin (DESIGN "Tenant scoping"), and the tenants' admin.

A member sees, picks and saves only rows of the tenants they belong to; roles decide what
they may change (owner/admin write, analyst/viewer read). Their requests run in a tenant
scope over those tenants (:mod:`apps.tenants.middleware`). Superusers have no scope and see
every tenant, through the default manager, ``all_tenants``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from unfold.admin import ModelAdmin as ThemedModelAdmin
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from apps.tenants.models import ApiKey, Invitation, Membership, Scope, Tenant
from apps.tenants.scoping import TenantOwnedModel, TenantScopeRequired, current_tenant_ids
from apps.tenants.services import (
    create_api_key,
    invite_member,
    revoke_api_key,
    revoke_invitation,
)
from apps.tenants.signals import subject_data_viewed


def member_roles(request: HttpRequest) -> dict[int, str]:
    """``{tenant_id: role}`` for the logged-in user, computed once per request."""
    cached = getattr(request, "_discreet_member_roles", None)
    if cached is None:
        user = request.user
        # A user's memberships span tenants: this is how the admin finds its scope.
        memberships = Membership.all_tenants.filter(user_id=user.pk)
        cached = (
            dict(memberships.values_list("tenant_id", "role")) if user.is_authenticated else {}
        )
        request._discreet_member_roles = cached
    return cached


def writable_tenant_ids(request: HttpRequest) -> set[int]:
    return {t for t, role in member_roles(request).items() if role in Membership.WRITE_ROLES}


class TenantScopedAllValuesFieldListFilter(admin.AllValuesFieldListFilter):
    """Django's ``AllValuesFieldListFilter`` reads a field across a relation
    (``purpose__key``) from the *related* table's default manager, which spans tenants
    (``all_tenants``): a member saw every tenant's purpose keys. This one offers the values
    found on the rows the admin shows, which are scoped to the member's tenants."""

    def __init__(self, field: Any, request: HttpRequest, params: Any, model: Any,
                 model_admin: Any, field_path: str) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (
            model_admin.get_queryset(request).order_by(field_path)
            .values_list(field_path, flat=True).distinct())


def _is_static_filter(field: Any) -> bool:
    """A filter over a field whose choices do not come from the database."""
    return bool(field.flatchoices) or isinstance(
        field, models.BooleanField | models.DateField | models.DateTimeField)


def tenant_scoped_list_filter(model: Any, entry: Any) -> Any:
    """The ``list_filter`` entry a member gets: a filter whose choices are read through a
    relation (a related row, or a value of one) is replaced by one that reads them from the
    admin's scoped queryset. Filters over the model's own fields already do; custom
    ``SimpleListFilter`` classes compute their own lookups and must scope them."""
    if isinstance(entry, str):
        path, filter_class = entry, None
    elif isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[0], str):
        path, filter_class = entry
    else:
        return entry  # a SimpleListFilter class
    fields = get_fields_from_path(model, path)
    last = fields[-1]
    if last.is_relation:
        if filter_class in (None, admin.RelatedFieldListFilter):
            return (path, admin.RelatedOnlyFieldListFilter)
        return entry
    if len(fields) == 1:
        return entry  # the model's own field: Django reads the admin's queryset
    if filter_class is admin.AllValuesFieldListFilter or (
            filter_class is None and not _is_static_filter(last)):
        return (path, TenantScopedAllValuesFieldListFilter)
    return entry


class TenantScopedAdminMixin:
    """Mix into a ``ModelAdmin`` of a :class:`TenantOwnedModel` (or of ``Tenant`` itself,
    with ``tenant_lookup = "pk"``)."""

    tenant_lookup = "tenant_id"
    #: Read-only models (ledgers, logs) refuse add/change/delete for everyone.
    read_only = False

    def _tenant_id_of(self, obj: Any) -> int | None:
        return obj.pk if self.tenant_lookup == "pk" else getattr(obj, "tenant_id", None)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        # Django's default manager: all_tenants for a tenant-owned model (apps.tenants.scoping).
        qs = super().get_queryset(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return qs  # superusers see every tenant (DESIGN "Tenant scoping"): the bypass
        # A member's request runs in a scope over their tenants (AdminTenantScopeMiddleware).
        tenant_ids = current_tenant_ids()
        if tenant_ids is None:
            raise TenantScopeRequired("a member's admin request outside a tenant scope")
        return qs.filter(**{f"{self.tenant_lookup}__in": sorted(tenant_ids)})

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
            related = db_field.related_model
            if related is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(pk__in=writable_tenant_ids(request))
            elif issubclass(related, TenantOwnedModel):
                kwargs["queryset"] = related.objects.filter(
                    tenant_id__in=writable_tenant_ids(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest,
                                 **kwargs: Any) -> Any:
        related = db_field.related_model
        if not request.user.is_superuser and issubclass(related, TenantOwnedModel):
            kwargs["queryset"] = related.objects.filter(tenant_id__in=writable_tenant_ids(request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = list(super().get_exclude(request, obj) or [])  # type: ignore[misc]
        # A member of a single tenant never has to pick it: it is set on save.
        if (self.tenant_lookup == "tenant_id" and not request.user.is_superuser
                and len(writable_tenant_ids(request)) == 1):
            exclude.append("tenant")
        return exclude

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)  # type: ignore[misc]
        if (self.tenant_lookup != "tenant_id" or request.user.is_superuser
                or len(writable_tenant_ids(request)) != 1):
            return form
        tenant_id = next(iter(writable_tenant_ids(request)))

        class MemberTenantForm(form):  # type: ignore[misc, valid-type]
            """The tenant is left out of a single-tenant member's form, so Django would
            skip every unique constraint that names it, and a duplicate (a second
            membership of one user) reached the database: a 500. Set it before the
            form validates, and validate the constraints with it."""

            def _post_clean(self) -> None:
                if self.instance.tenant_id is None:
                    self.instance.tenant_id = tenant_id
                super()._post_clean()

            def _get_validation_exclusions(self) -> set[str]:
                exclusions = set(super()._get_validation_exclusions())
                exclusions.discard("tenant")
                return exclusions

        MemberTenantForm.__name__ = form.__name__
        return MemberTenantForm

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

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))  # type: ignore[misc]
        # A member of one tenant needs no tenant column: lists stay readable at 1280 px.
        if not request.user.is_superuser and len(member_roles(request)) == 1:
            columns = [c for c in columns if c != "tenant"] or columns
        return columns

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))  # type: ignore[misc]
        if request.user.is_superuser:
            if self.tenant_lookup == "tenant_id":
                filters.insert(0, "tenant")
            return filters
        return [tenant_scoped_list_filter(self.model, f) for f in filters]  # type: ignore[attr-defined]


class TenantScopedAdmin(TenantScopedAdminMixin, ThemedModelAdmin):
    """The base of every tenant admin: scoped (the mixin) and themed (django-unfold)."""


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
        label = self.model._meta.label  # type: ignore[attr-defined]
        for tenant in Tenant.objects.filter(pk__in=list(shown)):
            subject_data_viewed.send(
                sender=self.model, tenant=tenant, user=request.user,  # type: ignore[attr-defined]
                target=target if target is not None else (label, ""), model=label,
                rows_shown=shown[tenant.pk], subject_key=getattr(target, "subject_key", None))


class SubjectDataAdmin(AuditedSubjectDataAdminMixin, ReadOnlyTenantScopedAdmin):
    """Read-only, tenant-scoped, access-audited: the admin class for ledgers and event data."""




@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    """The tenant and its settings. The settings are a form derived from their declarations
    (``apps.core.tenant_settings``: types, ranges, choices, help, defaults), validated as
    ``PATCH /api/v1/settings`` validates them; saved changes are recorded by django-auditlog
    and anchored in the tenant's audit chain."""

    tenant_lookup = "pk"
    list_display = ["slug", "name", "default_regime", "is_active", "created_at"]
    search_fields = ["slug", "name"]
    base_fields = ["slug", "name", "default_regime", "contact_email", "is_active"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        from apps.tenants.forms import settings_fieldsets

        if obj is None:
            return [(None, {"fields": self.base_fields})]
        return [(None, {"fields": self.base_fields}), *settings_fieldsets()]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        from apps.tenants.forms import tenant_settings_form

        if obj is not None:
            kwargs["form"] = tenant_settings_form(self.form)
        return super().get_form(request, obj, **kwargs)

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
                                       widget=UnfoldAdminCheckboxSelectMultipleWidget)

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
        if obj.rate_limit_per_minute:  # saved, not updated: django-auditlog records it
            api_key.rate_limit_per_minute = obj.rate_limit_per_minute
            api_key.save(update_fields=["rate_limit_per_minute", "updated_at"])
        obj.pk = api_key.pk
        messages.warning(request, f"Copy this key now; it will not be shown again: {raw_key}")

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:  # queryset is already scoped to the member's tenants
            if self.has_change_permission(request, api_key):
                revoke_api_key(api_key=api_key)
        self.message_user(request, "Revoked.")


def owner_tenant_ids(request: HttpRequest) -> set[int]:
    return {t for t, role in member_roles(request).items() if role == Membership.Role.OWNER}


class InvitationForm(forms.ModelForm):
    class Meta:
        model = Invitation
        fields = ["tenant", "email", "role"]


@admin.register(Invitation)
class InvitationAdmin(TenantScopedAdmin):
    """Team invitations. Owners invite a colleague by email with a role; the email (sent
    through the configured backend) carries a single-use link that expires
    (``INVITATION_VALID_FOR``). Invitations are never edited: revoke one and invite again."""

    list_display = ["email", "role", "tenant", "invitation_status", "invited_by", "created_at",
                    "expires_at", "accepted_at"]
    list_select_related = ["tenant", "invited_by"]
    list_filter = ["role"]
    search_fields = ["email"]
    actions = ["revoke_selected"]
    form = InvitationForm

    @admin.display(description="status")
    def invitation_status(self, obj: Invitation) -> str:
        return obj.status

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser or bool(owner_tenant_ids(request))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = [f for f in (super().get_exclude(request, obj) or []) if f != "tenant"]
        if not request.user.is_superuser and len(owner_tenant_ids(request)) == 1:
            exclude.append("tenant")
        return exclude

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        if "tenant" in form.base_fields and not request.user.is_superuser:
            form.base_fields["tenant"].queryset = Tenant.objects.filter(
                pk__in=sorted(owner_tenant_ids(request)))
        return form

    def save_model(self, request: HttpRequest, obj: Invitation, form: Any, change: bool) -> None:
        from django.urls import reverse

        owned = owner_tenant_ids(request)
        if not request.user.is_superuser:
            if obj.tenant_id is None and len(owned) == 1:
                obj.tenant_id = next(iter(owned))
            if obj.tenant_id not in owned:
                raise PermissionDenied
        invitation = invite_member(
            tenant=Tenant.objects.get(pk=obj.tenant_id), email=obj.email, role=obj.role,
            invited_by=request.user,
            accept_url=lambda token: request.build_absolute_uri(
                reverse("invitation-accept", args=[token])))
        obj.pk = invitation.pk
        messages.info(request, f"An invitation was sent to {invitation.email}; its link "
                               f"works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC.")

    @admin.action(description="Revoke the selected invitations")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        owned = owner_tenant_ids(request)
        revoked = 0
        for invitation in queryset:  # already scoped to the member's tenants
            if request.user.is_superuser or invitation.tenant_id in owned:
                revoke_invitation(invitation=invitation)
                revoked += 1
        self.message_user(request, f"Revoked {revoked} invitation(s).")
