"""Writes and computations of the modeling app (STYLE S1). Public names live here."""

from apps.modeling.services.controls import (
    personalization_stopped,
    rectify_subject,
    remove_subject_from_models,
)
from apps.modeling.services.erasure import (
    ArtifactEvidence,
    artifacts_holding_subject,
    erase_subject,
    export_subject,
    stored_model_evidence,
)
from apps.modeling.services.popularity import budget_spent, release_popular_items
from apps.modeling.services.serving import (
    Recommendation,
    ServingAlgorithm,
    current_model,
    model_bundle,
    recommend_for_session,
    recommend_for_subject,
    serving_algorithm,
    similar_items,
)
from apps.modeling.services.training import (
    activate_version,
    destroy_artifact,
    execute_training_run,
    get_active_version,
    register_activation_listener,
    request_retrain_after_deletion,
    request_retrain_later,
    request_training,
    retire_version,
    schedule_training_for_all,
    start_due_retrains,
    train_model,
)

__all__ = [
    "ArtifactEvidence",
    "Recommendation",
    "ServingAlgorithm",
    "activate_version",
    "artifacts_holding_subject",
    "budget_spent",
    "current_model",
    "destroy_artifact",
    "erase_subject",
    "execute_training_run",
    "export_subject",
    "get_active_version",
    "model_bundle",
    "personalization_stopped",
    "recommend_for_session",
    "recommend_for_subject",
    "rectify_subject",
    "register_activation_listener",
    "release_popular_items",
    "remove_subject_from_models",
    "request_retrain_after_deletion",
    "request_retrain_later",
    "request_training",
    "retire_version",
    "schedule_training_for_all",
    "serving_algorithm",
    "similar_items",
    "start_due_retrains",
    "stored_model_evidence",
    "train_model",
]
