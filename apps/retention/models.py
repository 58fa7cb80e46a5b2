"""Retention: one policy per tenant and data category, the runs that enforce them, and the
receipt each run leaves per category (DESIGN "retention")."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.jobs import DurableJob
from apps.tenants.scoping import TenantOwnedModel


class RetentionPolicy(TenantOwnedModel):
    """How long one category of a tenant's data is kept. The period is set in ``days`` or,
    for tests and short-lived data, in ``hours`` (never both). Both are empty for a category
    whose period follows another (inactive subjects follow events). Provisioned with the
    registry's defaults for every tenant; edited in the admin (django-auditlog) or by
    ``PUT /api/v1/retention-policies/{category}``."""

    category = models.CharField(max_length=32)
    days = models.PositiveIntegerField(null=True, blank=True)
    hours = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["tenant_id", "category"]
        verbose_name_plural = "retention policies"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "category"],
                                    name="retentionpolicy_one_per_category"),
            models.CheckConstraint(condition=Q(days__isnull=True) | Q(hours__isnull=True),
                                   name="retentionpolicy_days_or_hours"),
            models.CheckConstraint(condition=Q(days__isnull=True) | Q(days__gte=1),
                                   name="retentionpolicy_days_positive"),
            models.CheckConstraint(condition=Q(hours__isnull=True) | Q(hours__gte=1),
                                   name="retentionpolicy_hours_positive"),
        ]

    def __str__(self) -> str:
        return self.category

    @property
    def period(self) -> timedelta | None:
        if self.days is not None:
            return timedelta(days=self.days)
        if self.hours is not None:
            return timedelta(hours=self.hours)
        return None


class RetentionRun(TenantOwnedModel, DurableJob):
    """One enforcement of every category for one tenant (a durable job: beat or the command
    creates the row, a worker runs it, the sweeper resends it if its message was lost).

    ``progress["categories"][code]`` is the checkpoint of each category: the cutoff fixed
    when the run was created, rows deleted so far, batches, seconds, the category's cursor
    and ``done``. It is written in the same transaction as each batch, so a run that is
    interrupted and started again deletes exactly the rest."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Daily schedule"
        COMMAND = "command", "manage.py enforce_retention"
        ADMIN = "admin", "Admin action"

    job_task = "apps.retention.tasks.enforce_retention_task"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="The daily slot this run is for (scheduled runs).")
    batch_size = models.PositiveIntegerField(default=10_000)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One scheduled run per tenant and daily slot: beat may fire twice.
            models.UniqueConstraint(fields=["tenant", "scheduled_for"],
                                    condition=Q(scheduled_for__isnull=False),
                                    name="retentionrun_one_per_slot"),
            models.CheckConstraint(condition=Q(batch_size__gte=1),
                                   name="retentionrun_batch_size_positive"),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="retentionrun_status_idx")]

    def __str__(self) -> str:
        return f"retention run #{self.pk}"


class RetentionReceipt(TenantOwnedModel):
    """What one run deleted in one category. The same figures are in the audit trail
    (``retention.receipt``, ``audit_sequence``); this copy is for the admin."""

    run = models.ForeignKey(RetentionRun, on_delete=models.CASCADE, related_name="receipts")
    category = models.CharField(max_length=32)
    cutoff = models.DateTimeField(help_text="Data older than this was deleted.")
    unit = models.CharField(max_length=16, default="rows")
    deleted = models.PositiveBigIntegerField(help_text="How many (of the unit) were deleted.")
    rows_deleted = models.PositiveBigIntegerField()
    batches = models.PositiveIntegerField(default=0)
    duration_seconds = models.FloatField(default=0.0)
    audit_sequence = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "category"]
        constraints = [
            models.UniqueConstraint(fields=["run", "category"],
                                    name="retentionreceipt_one_per_category"),
        ]

    def __str__(self) -> str:
        return f"{self.category}: {self.deleted}"
