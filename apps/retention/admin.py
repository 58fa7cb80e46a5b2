"""Retention in the admin: the policies (edited here, recorded by django-auditlog and the
audit trail), each tenant's last and next run, what a dry run would delete now, the runs
with their per-category checkpoints, and the receipts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from unfold.admin import TabularInline as ThemedTabularInline

from apps.core.exceptions import ApplicationError
from apps.retention.categories import get_retention_category
from apps.retention.models import RetentionPolicy, RetentionReceipt, RetentionRun
from apps.retention.selectors import (
    get_last_finished_run,
    get_next_run_at,
    get_retention_policy,
    preview_retention,
    run_checkpoints,
)
from apps.retention.services import (
    resume_or_start_retention_run,
    set_retention_policy,
    validate_period,
)
from apps.tenants.admin import ReadOnlyTenantScopedAdmin, TenantScopedAdmin, writable_tenant_ids
from apps.tenants.models import Tenant


def _per_request(request: HttpRequest, name: str, tenant: Tenant, compute: Any) -> Any:
    """Compute once per request and tenant (a changelist shows several rows per tenant)."""
    cache = request.__dict__.setdefault(f"_retention_{name}", {})
    if tenant.pk not in cache:
        cache[tenant.pk] = compute()
    return cache[tenant.pk]


class RetentionPolicyForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ["days", "hours"]
        help_texts = {"days": "The period in days.",
                      "hours": "Or in hours (short-lived data, tests). Leave days empty."}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        category = get_retention_category(self.instance.category)
        if category is not None:
            try:
                validate_period(category=category, days=cleaned.get("days"),
                                hours=cleaned.get("hours"))
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message, code=exc.code) from exc
        return cleaned


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(TenantScopedAdmin):
    form = RetentionPolicyForm
    list_select_related = ["tenant"]
    ordering = ["tenant__slug", "category"]
    readonly_fields = ["tenant", "category", "description", "would_delete_now", "last_run",
                       "next_run", "updated_at"]
    actions = ["dry_run", "run_now"]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        """Per-tenant figures are computed once per page and tenant, not once per row
        (closures over the request: the admin instance is shared between threads)."""

        @admin.display(description="a dry run would delete now")
        def would_delete_now(obj: RetentionPolicy) -> str:
            counts = _per_request(request, "preview", obj.tenant,
                                  lambda: preview_retention(tenant=obj.tenant))
            return self._would_delete(obj, counts)

        @admin.display(description="last run")
        def last_run(obj: RetentionPolicy) -> str:
            return self._describe_run(_per_request(
                request, "last", obj.tenant, lambda: get_last_finished_run(tenant=obj.tenant)))

        @admin.display(description="next run")
        def next_run(obj: RetentionPolicy) -> str:
            return _per_request(request, "next", obj.tenant, lambda: self.next_run(obj))

        return ["category", "tenant", "period", would_delete_now, last_run, next_run,
                "updated_at"]

    # Rows come from provisioning, one per category: never added or deleted by hand.
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        editable = obj is not None and get_retention_policy(
            tenant=obj.tenant, category=obj.category).editable
        return ["tenant", "category", "description", *(["days", "hours"] if editable else []),
                "would_delete_now", "last_run", "next_run", "updated_at"]

    @admin.display(description="description")
    def description(self, obj: RetentionPolicy) -> str:
        category = get_retention_category(obj.category)
        return category.description if category else "(category no longer registered)"

    @admin.display(description="period")
    def period(self, obj: RetentionPolicy) -> str:
        view = get_retention_policy(tenant=obj.tenant, category=obj.category)
        if not view.category.time_based:
            return "a count rule (see the description)"
        if view.category.follows:
            return f"follows {view.category.follows} ({view.period.days} days)" if (
                view.period) else f"follows {view.category.follows}"
        fixed = "" if view.editable else " (fixed)"
        if view.hours is not None:
            return f"{view.hours} hours{fixed}"
        return f"{view.days} days{fixed}" if view.days is not None else "-"

    @staticmethod
    def _would_delete(obj: RetentionPolicy, counts: dict[str, int]) -> str:
        category = get_retention_category(obj.category)
        count = counts.get(obj.category)
        return "-" if count is None else f"{count} {category.unit if category else ''}".strip()

    @staticmethod
    def _describe_run(run: RetentionRun | None) -> str:
        if run is None:
            return "never"
        return f"#{run.pk} {run.status} {run.finished_at:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="a dry run would delete now")
    def would_delete_now(self, obj: RetentionPolicy) -> str:
        return self._would_delete(obj, preview_retention(tenant=obj.tenant))

    @admin.display(description="last run")
    def last_run(self, obj: RetentionPolicy) -> str:
        return self._describe_run(get_last_finished_run(tenant=obj.tenant))

    @admin.display(description="next run")
    def next_run(self, obj: RetentionPolicy) -> str:
        return f"{get_next_run_at(tenant=obj.tenant):%Y-%m-%d %H:%M} UTC"

    def save_model(self, request: HttpRequest, obj: RetentionPolicy, form: forms.ModelForm,
                   change: bool) -> None:
        self.assign_member_tenant(request, obj)
        # Through the service: same validation, same audit entry as the API.
        set_retention_policy(tenant=obj.tenant, category=obj.category, days=obj.days,
                             hours=obj.hours, actor=request.user)

    @admin.action(description="Dry run: show what retention would delete now")
    def dry_run(self, request: HttpRequest, queryset: QuerySet[RetentionPolicy]) -> None:
        for tenant in Tenant.objects.filter(pk__in=queryset.values("tenant_id")):
            counts = preview_retention(tenant=tenant)
            summary = ", ".join(f"{code}: {n}" for code, n in counts.items())
            self.message_user(request, f"{tenant.slug}: {summary}", messages.INFO)

    @admin.action(description="Run retention now for these tenants")
    def run_now(self, request: HttpRequest, queryset: QuerySet[RetentionPolicy]) -> None:
        tenant_ids = set(queryset.values_list("tenant_id", flat=True))
        if not request.user.is_superuser and not tenant_ids <= writable_tenant_ids(request):
            raise PermissionDenied
        for tenant in Tenant.objects.filter(pk__in=tenant_ids):
            run = resume_or_start_retention_run(
                tenant=tenant, trigger=RetentionRun.Trigger.ADMIN, requested_by=request.user)
            self.message_user(request, f"{tenant.slug}: retention run #{run.pk} queued.",
                              messages.SUCCESS)


class RetentionReceiptInline(ThemedTabularInline):
    model = RetentionReceipt
    extra = 0
    can_delete = False
    fields = ["category", "cutoff", "deleted", "unit", "rows_deleted", "batches",
              "duration_seconds", "audit_sequence"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["__str__", "tenant", "trigger", "status", "scheduled_for", "started_at",
                    "finished_at", "deleted", "attempts"]
    list_filter = ["status", "trigger"]
    list_select_related = ["tenant"]
    ordering = ["-created_at"]
    inlines = [RetentionReceiptInline]
    fields = ["tenant", "trigger", "status", "scheduled_for", "batch_size", "requested_by",
              "attempts", "max_attempts", "enqueued_at", "started_at", "heartbeat_at",
              "worker", "finished_at", "checkpoints", "last_error"]
    readonly_fields = fields

    @admin.display(description="deleted")
    def deleted(self, obj: RetentionRun) -> str:
        return ", ".join(f"{code}: {cp.get('deleted', 0)}" for code, cp in run_checkpoints(obj))

    @admin.display(description="checkpoints per category")
    def checkpoints(self, obj: RetentionRun) -> str:
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((code, cp.get("cutoff", ""), cp.get("deleted", 0), cp.get("batches", 0),
              f"{cp.get('seconds', 0.0):.2f}s", "done" if cp.get("done") else "pending")
             for code, cp in run_checkpoints(obj)),
        )
        return format_html(
            "<table><tr><th>category</th><th>cutoff</th><th>deleted</th><th>batches</th>"
            "<th>time</th><th>state</th></tr>{}</table>", rows)


@admin.register(RetentionReceipt)
class RetentionReceiptAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["created_at", "tenant", "category", "cutoff", "deleted", "unit",
                    "rows_deleted", "duration_seconds", "run", "audit_sequence"]
    list_filter = ["category"]
    list_select_related = ["tenant", "run"]
    ordering = ["-created_at", "category"]
