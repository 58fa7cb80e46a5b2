from __future__ import annotations

from django.contrib import admin

from apps.audit.models import AuditChainVerification, AuditEvent
from apps.tenants.admin import ReadOnlyTenantScopedAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["sequence", "tenant", "occurred_at", "action", "actor_type", "actor_id",
                    "target_type", "target_id"]
    list_filter = ["action", "actor_type"]
    list_select_related = ["tenant"]
    search_fields = ["action", "target_id"]
    ordering = ["tenant", "-sequence"]


@admin.register(AuditChainVerification)
class AuditChainVerificationAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["created_at", "tenant", "status", "intact", "checked_entries",
                    "first_broken_sequence", "problem"]
    list_select_related = ["tenant"]
