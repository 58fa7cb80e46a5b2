"""The modeling app's subject data: the model artifacts (id maps, factors, interactions)
trained on a subject's activity (DESIGN "Declarations"). No table of this app has a subject
field. Erased before the events (order 50), so the active model forgets the subject first.

The functions are the modeling services' public names, imported when called."""

from __future__ import annotations

from typing import Any

from apps.core.subject_data import (
    Correction,
    ModelEffect,
    PeriodOf,
    RetentionRule,
    SubjectDataStore,
    declare,
    frozen,
    not_applicable,
)
from apps.tenants.models import Tenant


def _export(tenant: Tenant, subject_key: str) -> dict[str, Any]:
    from apps.modeling.services import export_subject

    return export_subject(tenant, subject_key)


def _erase(tenant: Tenant, subject_key: str) -> int:
    from apps.modeling.services import erase_subject

    return erase_subject(tenant, subject_key)


def _rectify(tenant: Tenant, subject_key: str, correction: Correction) -> dict[str, Any]:
    from apps.modeling.services import rectify_subject

    return rectify_subject(tenant, subject_key, correction)


def _verify(tenant: Tenant, subject_key: str) -> list[str]:
    from apps.modeling.services import artifacts_holding_subject

    return artifacts_holding_subject(tenant, subject_key)


def _describe(tenant: Tenant, subject_key: str) -> dict[str, Any]:
    from apps.modeling.services.erasure import describe_subject

    return describe_subject(tenant, subject_key)


def _held(tenant: Tenant, subject_key: str) -> list[str]:
    # The same selector as the export's lineage and the erasure receipt's versions.
    from apps.modeling.selectors import list_subject_model_versions

    return [f"model v{v.number}"
            for v in list_subject_model_versions(tenant=tenant, subject_key=subject_key)]


def _text(tenant: Tenant, period: PeriodOf) -> str:
    return ("Recommendation models are retrained without the data deleted under these rules; "
            "only the active model and the two before it are kept.")


declare(SubjectDataStore(
    name="modeling.artifacts",
    category="recommendation models trained on your activity",
    models=(),
    order=50,
    export=_export,
    erase=_erase,
    restrict=frozen("Serving does not personalize for the subject and training leaves "
                    "their events out."),
    # Runs before the events store deletes the interactions: the subject leaves the live
    # model at once and the retrain learns them again from what remains.
    rectify=_rectify,
    retention=RetentionRule(
        category="model_artifacts", text=_text,
        expiry=not_applicable("Kept by count, not by age: the retention app destroys all "
                              "but the active version and the two before it."),
        dated=False),
    model_effect=ModelEffect.IS_MODEL,
    verify_erased=_verify,
    describe_erasure=_describe,
    held=_held,
))
