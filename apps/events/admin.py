from __future__ import annotations

from django.contrib import admin

from apps.events.models import (
    Event,
    EventProperty,
    EventType,
    HistoryCapJob,
    HistoryCapStatus,
    Item,
    ItemAttribute,
)
from apps.tenants.admin import ReadOnlyTenantScopedAdmin, TenantScopedAdmin


@admin.register(EventType)
class EventTypeAdmin(TenantScopedAdmin):
    list_display = ["code", "tenant", "weight", "weight_from_value", "min_value", "max_value",
                    "purpose", "is_active"]
    list_filter = ["is_active", "weight_from_value"]
    search_fields = ["code"]


@admin.register(EventProperty)
class EventPropertyAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "kind"]
    search_fields = ["name"]


@admin.register(ItemAttribute)
class ItemAttributeAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "kind"]
    search_fields = ["name"]


@admin.register(Item)
class ItemAdmin(TenantScopedAdmin):
    list_display = ["external_id", "title", "tenant", "is_active", "auto_created", "updated_at"]
    list_filter = ["is_active", "auto_created"]
    search_fields = ["external_id", "title"]
    readonly_fields = ["auto_created", "created_at", "updated_at"]
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(ReadOnlyTenantScopedAdmin):
    """Read-only: events change only through ingestion, the history cap and erasure.
    Subject keys are pseudonyms, but there is no reason to display them in a list."""

    list_display = ["event_id", "type", "item", "value", "occurred_at", "created_at"]
    list_select_related = ["item"]
    list_filter = ["type"]
    search_fields = ["=event_id"]
    show_full_result_count = False  # COUNT(*) of a large table on every page is too slow


@admin.register(HistoryCapStatus)
class HistoryCapStatusAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["tenant", "last_run_at", "last_cap", "last_subjects_checked",
                    "last_subjects_capped", "last_events_deleted", "events_deleted_total",
                    "runs_total"]


@admin.register(HistoryCapJob)
class HistoryCapJobAdmin(ReadOnlyTenantScopedAdmin):
    """The durable history-cap jobs of ingestion batches: pending, running or failed ones
    are worth a look; succeeded ones are pruned after a day."""

    list_display = ["id", "tenant", "status", "events", "attempts", "enqueued_at",
                    "finished_at", "last_error"]
    list_filter = ["status"]
    list_select_related = ["tenant"]
    exclude = ["event_ids"]
