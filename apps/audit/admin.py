from __future__ import annotations

from typing import Any

from auditlog import get_logentry_model
from auditlog.mixins import LogEntryAdminMixin
from auditlog.registry import auditlog as auditlog_registry
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import BigIntegerField, QuerySet
from django.db.models.functions import Cast
from django.http import HttpRequest
from unfold.admin import ModelAdmin as ThemedModelAdmin

from apps.audit.config_changes import (
    CONFIG_CHANGED,
    LOG_ENTRY_TARGET,
    AnchorStatus,
    anchor_statuses,
)
from apps.audit.models import AuditChainVerification, AuditEvent
from apps.tenants.admin import ReadOnlyTenantScopedAdmin, member_roles
from apps.tenants.models import Membership, Tenant


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["sequence", "tenant", "occurred_at", "action", "actor", "target"]
    list_filter = ["action", "actor_type"]
    list_select_related = ["tenant"]
    search_fields = ["action", "target_id"]
    ordering = ["tenant", "-sequence"]

    @admin.display(description="actor", ordering="actor_type")
    def actor(self, obj: AuditEvent) -> str:
        return " ".join(str(p) for p in (obj.actor_type, obj.actor_id) if p not in (None, ""))

    @admin.display(description="target", ordering="target_type")
    def target(self, obj: AuditEvent) -> str:
        return " ".join(str(p) for p in (obj.target_type, obj.target_id) if p not in (None, ""))


@admin.register(AuditChainVerification)
class AuditChainVerificationAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["created_at", "tenant", "status", "intact", "checked_entries",
                    "first_broken_sequence", "problem"]
    list_select_related = ["tenant"]


# --- django-auditlog's configuration changes ----------------------------------------------
# auditlog's own LogEntry admin shows every tenant's changes to anyone with the permission;
# this one shows a tenant's owners the changes anchored in their tenant's chain, read-only.
LogEntry = get_logentry_model()
if admin.site.is_registered(LogEntry):
    admin.site.unregister(LogEntry)


class ConfigModelFilter(admin.SimpleListFilter):
    """The models django-auditlog records, from the code (never from the rows: a choice
    listed from every tenant's entries would tell an owner what others changed)."""

    title = "configuration"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        labels = sorted(m._meta.label_lower for m in auditlog_registry.get_models())
        return [(label, label) for label in labels]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value() or "." not in self.value():
            return queryset
        app_label, model = self.value().split(".", 1)
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)


class _AnchoredChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.model_admin.attach_anchors(request, self.result_list)


@admin.register(LogEntry)
class ConfigChangeAdmin(LogEntryAdminMixin, ThemedModelAdmin):
    """Configuration changes recorded by django-auditlog, each with its anchor in the
    tenant's audit chain. Owners see their tenants' anchored changes; superusers see every
    entry, anchored or not. Read-only for everyone."""

    list_display = ["created", "tenant_name", "resource_url", "action", "msg_short",
                    "user_url", "anchor"]
    list_select_related = ["content_type", "actor"]
    list_filter = ["action", ConfigModelFilter]
    search_fields = ["object_repr"]
    ordering = ["-timestamp"]
    fields = ["created", "tenant_name", "user_url", "resource_url", "action", "msg", "anchor"]
    readonly_fields = fields

    def owned_tenant_ids(self, request: HttpRequest) -> set[int] | None:
        """The tenants whose changes the user may see; ``None``: all (a superuser)."""
        if request.user.is_superuser:
            return None
        return {t for t, role in member_roles(request).items()
                if role == Membership.Role.OWNER}

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        owned = self.owned_tenant_ids(request)
        if owned is None:
            return queryset
        # Only entries anchored in an owned tenant's chain: the chain, not the LogEntry
        # row, says whose change it is. Cast in the select list: only anchor rows reach it.
        anchored = (AuditEvent.objects.filter(
            tenant_id__in=sorted(owned), action=CONFIG_CHANGED, target_type=LOG_ENTRY_TARGET)
            .annotate(log_entry_id=Cast("target_id", BigIntegerField()))
            .values("log_entry_id"))
        return queryset.filter(pk__in=anchored)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _AnchoredChangeList

    def attach_anchors(self, request: HttpRequest, entries: Any) -> None:
        """One query for the anchors of a page of entries, and one for their contents."""
        entries = list(entries)
        statuses = anchor_statuses([e.pk for e in entries],
                                   tenant_ids=self.owned_tenant_ids(request))
        names = dict(Tenant.objects.filter(pk__in={s.tenant_id for s in statuses.values()})
                     .values_list("pk", "name"))
        for entry in entries:
            status = statuses.get(entry.pk)
            entry.anchor_status = status
            entry.anchor_tenant_name = names.get(status.tenant_id) if status else None

    def get_object(self, request: HttpRequest, object_id: str,
                   from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:  # the detail page
            self.attach_anchors(request, [obj])
        return obj

    def _status(self, obj: Any) -> AnchorStatus | None:
        return getattr(obj, "anchor_status", None)

    @admin.display(description="tenant")
    def tenant_name(self, obj: Any) -> str:
        return getattr(obj, "anchor_tenant_name", None) or "—"

    @admin.display(description="audit chain")
    def anchor(self, obj: Any) -> str:
        status = self._status(obj)
        if status is None:
            return "not anchored"
        if not status.intact:
            return f"ALTERED since anchored by entry #{status.sequence}"
        return f"verified (entry #{status.sequence})"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and (request.user.is_superuser
                                           or bool(self.owned_tenant_ids(request)))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An object reached the view through get_queryset, which scoped it already.
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
