"""The modeling app's subject data (DESIGN "Declarations"): the model artifacts (id maps,
factors, interactions) trained on a subject's activity, erased before the events (order 50)
so that the active model forgets the subject first; and the quarantine records of subjects
left out of training for anomalous activity (``SubjectQuarantine``, issue 15).

The functions are the modeling services' public names, imported when called."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext, gettext_noop

from apps.core.subject_data import (
    INACTIVE_SUBJECTS,
    Correction,
    ModelEffect,
    PeriodOf,
    RetentionRule,
    SubjectDataStore,
    declare,
    describe_period,
    frozen,
    not_applicable,
    removed_with_inactive_subjects,
    subject_rows,
)
from apps.modeling.models import SubjectQuarantine
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

    return [gettext("model v%(number)s") % {"number": v.number}
            for v in list_subject_model_versions(tenant=tenant, subject_key=subject_key)]


def _text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("Recommendation models are retrained without the data deleted under these "
                   "rules; only the active model and the two before it are kept.")


declare(SubjectDataStore(
    name="modeling.artifacts",
    category=gettext_noop("recommendation models trained on your activity"),
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


_export_quarantine, _erase_quarantine = subject_rows(SubjectQuarantine, (
    "reason", "figures", "detected_at", "released_at"))


def _quarantine_text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("A record that your activity was left out of model training as unusual "
                   "(and of its release) is kept while you use the service, and deleted after "
                   "%(period)s without any activity.") % {
        "period": describe_period(period(INACTIVE_SUBJECTS))}


declare(SubjectDataStore(
    name="modeling.quarantine",
    category=gettext_noop(
        "training quarantine: activity left out of model training as anomalous"),
    models=("modeling.SubjectQuarantine",),
    order=60,
    export=_export_quarantine,
    erase=_erase_quarantine,
    restrict=frozen("Kept, and not removed with inactive subjects; a restricted subject is "
                    "left out of training whatever the record says."),
    rectify=not_applicable("The figures were measured from the subject's events: correcting "
                           "those (events.event) changes what the next training measures, and "
                           "a member releases a quarantine found in error."),
    retention=removed_with_inactive_subjects(_quarantine_text),
    # The records are not trained on: they keep a subject out of training.
    model_effect=ModelEffect.NONE,
))
