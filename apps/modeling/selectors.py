"""Reads of the modeling app, always scoped to one tenant (STYLE S4)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.modeling.models import ModelVersion, PrivacyBudgetEntry, SubjectQuarantine, TrainingRun
from apps.tenants.models import Tenant


def list_model_versions(*, tenant: Tenant) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.for_tenant(tenant).order_by("-number")


def get_active_model_version(*, tenant: Tenant) -> ModelVersion:
    """The active version; ``ModelVersion.DoesNotExist`` when none is."""
    return ModelVersion.objects.for_tenant(tenant).get(status=ModelVersion.Status.ACTIVE)


def list_stored_versions(*, tenant: Tenant) -> list[ModelVersion]:
    """Versions whose artifact is still stored, oldest first."""
    return list(ModelVersion.objects.for_tenant(tenant)
                .filter(artifact_destroyed_at__isnull=True).exclude(artifact_path="")
                .order_by("number"))


def list_subject_model_versions(*, tenant: Tenant, subject_key: str) -> list[ModelVersion]:
    """The stored versions trained on the subject, oldest first: their artifact holds the
    subject's key, or a subject control patched them out of it (``removed_subject_keys``,
    the lineage kept while the artifact is stored). The one answer for the access export,
    the portal's "my data" and the erasure receipt, so that they never disagree."""
    from apps.modeling.services.artifacts import holds_subject

    return [v for v in list_stored_versions(tenant=tenant)
            if subject_key in v.removed_subject_keys
            or holds_subject(v.artifact_path, subject_key)]


def list_training_runs(*, tenant: Tenant) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.for_tenant(tenant).order_by("-pk")


def list_budget_entries(*, tenant: Tenant) -> QuerySet[PrivacyBudgetEntry]:
    return PrivacyBudgetEntry.objects.for_tenant(tenant).order_by("-pk")


def list_subject_quarantines(*, tenant: Tenant, open: bool | None = None
                             ) -> QuerySet[SubjectQuarantine]:
    """The tenant's quarantine records, newest first; ``open``: only those not released
    (``True``) or only released ones (``False``)."""
    records = SubjectQuarantine.objects.for_tenant(tenant)
    if open is not None:
        records = records.filter(released_at__isnull=open)
    return records.order_by("-detected_at", "-pk")


#: Stored artifacts kept besides the active version's: "the two before it" (retention).
ARTIFACTS_KEPT_BEFORE_ACTIVE = 2


def list_expired_artifacts(*, tenant: Tenant) -> list[ModelVersion]:
    """Stored artifacts older than the active version and the two before it (by version
    number). Versions newer than the active one (candidates not activated) are kept; with
    no active version, the newest three are kept."""
    stored = list(ModelVersion.objects.for_tenant(tenant)
                  .filter(artifact_destroyed_at__isnull=True).exclude(artifact_path="")
                  .order_by("-number"))
    active = next((v for v in stored if v.status == ModelVersion.Status.ACTIVE), None)
    if active is None:
        return stored[ARTIFACTS_KEPT_BEFORE_ACTIVE + 1:]
    before = [v for v in stored if v.number < active.number]
    return before[ARTIFACTS_KEPT_BEFORE_ACTIVE:]


def describe_decision(decision: dict[str, Any]) -> str:
    """One line for a version's champion/challenger decision (admin, ``train_models``):
    the outcome, both NDCG@10 figures on the shared hold-out and its size."""
    if not decision:
        return ""
    outcome = "activated" if decision.get("activate") else "not activated"
    champion, challenger = decision.get("champion") or {}, decision.get("challenger") or {}
    holdout = decision.get("holdout") or {}
    if "ndcg@10" in champion and "ndcg@10" in challenger:
        return (f"{outcome}: challenger NDCG@10 {challenger['ndcg@10']:.4f} vs v"
                f"{champion['version']} re-scored {champion['ndcg@10']:.4f} (tolerance "
                f"{decision.get('tolerance')}), hold-out {holdout.get('users', 0)} subjects / "
                f"{holdout.get('interactions', 0)} interactions")
    return f"{outcome} ({decision.get('rule', '')}): {decision.get('why', '')}"


def get_modeling_settings(*, tenant: Tenant) -> Any:
    """The tenant's modeling settings with their defaults (``config.ModelingSettings``):
    weighting, caps and the differential-privacy budget (``dp_epsilon``,
    ``dp_budget_total`` over ``dp_budget_window_days``), for pages that explain them."""
    from apps.modeling.config import modeling_settings

    return modeling_settings(tenant)


def list_version_quality(*, tenant: Tenant, limit: int = 20) -> list[dict[str, Any]]:
    """The hold-out NDCG@10 of the newest ``limit`` versions and of the popularity baseline
    they were measured against, oldest first (one query)."""
    rows = list(ModelVersion.objects.for_tenant(tenant).order_by("-number")
                .values("number", "status", "algorithm", "metrics")[:limit])
    out = []
    for row in reversed(rows):
        metrics = row["metrics"] or {}
        out.append({"number": row["number"], "status": row["status"],
                    "algorithm": row["algorithm"],
                    "ndcg": (metrics.get("model") or {}).get("ndcg@10"),
                    "baseline": (metrics.get("popularity") or {}).get("ndcg@10")})
    return out


def get_privacy_budget(*, tenant: Tenant) -> dict[str, float]:
    """ε spent in the tenant's rolling window against its cap (one query)."""
    from apps.modeling.config import modeling_settings
    from apps.modeling.services.popularity import budget_spent

    cfg = modeling_settings(tenant)
    return {"spent": budget_spent(tenant=tenant, window_days=cfg.dp_budget_window_days),
            "cap": float(cfg.dp_budget_total), "window_days": cfg.dp_budget_window_days}


def list_running_training(*, tenant: Tenant, limit: int = 10) -> list[dict[str, Any]]:
    """Unfinished training runs with their progress (one query)."""
    out = []
    for run in (TrainingRun.objects.for_tenant(tenant)
                .filter(status__in=[TrainingRun.Status.PENDING, TrainingRun.Status.RUNNING])
                .order_by("pk").only("pk", "status", "reason", "progress", "created_at")
                [:limit]):
        progress = run.progress or {}
        done, total = progress.get("iteration"), progress.get("iterations")
        detail = str(progress.get("stage", ""))
        if progress.get("candidate"):
            detail = f"{progress['candidate']}: iteration {done}/{total}"
        out.append({"kind": "training", "id": run.pk, "status": run.status,
                    "label": f"Training run {run.pk} ({run.reason})",
                    "done": done, "total": total, "detail": detail,
                    "url_name": "admin:modeling_trainingrun_change"})
    return out
