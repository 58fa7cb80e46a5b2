"""Reads of the modeling app, always scoped to one tenant (STYLE S4)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.modeling.models import ModelVersion, PrivacyBudgetEntry, TrainingRun
from apps.tenants.models import Tenant


def list_model_versions(*, tenant: Tenant) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.for_tenant(tenant).order_by("-number")


def get_active_model_version(*, tenant: Tenant) -> ModelVersion:
    """The active version; ``ModelVersion.DoesNotExist`` when none is."""
    return ModelVersion.objects.for_tenant(tenant).get(status=ModelVersion.Status.ACTIVE)


def list_training_runs(*, tenant: Tenant) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.for_tenant(tenant).order_by("-pk")


def list_budget_entries(*, tenant: Tenant) -> QuerySet[PrivacyBudgetEntry]:
    return PrivacyBudgetEntry.objects.for_tenant(tenant).order_by("-pk")
