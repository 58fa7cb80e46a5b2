"""Subject controls reach the live model at once (issue 14, point 1).

When a subject's effective level leaves "full" (a level of "session" or "off", an objection,
a restriction, personalization withdrawn: the consent app's personalization-stop listener)
or a rectification deletes some of their interactions, the subject is removed from every
stored model before the API call or portal form returns: each artifact holding them is
rewritten with the erasure patch (:func:`~apps.modeling.services.erasure.patch_out_subject`:
their row and interactions gone, the items they touched recomputed), so that serving and
explanations never use them again. The retrain that removes what is left of their influence
is requested as a durable row (``ServingState.retrain_requested_at``, started by the beat
as a :class:`~apps.modeling.models.TrainingRun`).

Below "full" nothing about the subject may be stored (``apps/privacy`` portal: "Session
only"), so the rows of every store the models are trained on (``ModelEffect.TRAINING_DATA``,
e.g. their events) are deleted too, unless the subject is restricted: a restriction (GDPR
Art. 18) freezes those rows instead (kept, used for nothing, see the stores' ``restrict``).
A rectification that keeps some interactions removes the subject's row rather than
recomputing it; the retrain brings them back from what remains.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from apps.audit import services as audit
from apps.consent.selectors import get_subject_consent_views
from apps.core.subject_data import Correction, Frozen, ModelEffect, subject_data_stores
from apps.events.selectors import list_subject_events
from apps.modeling.models import TrainingRun
from apps.modeling.services.erasure import holds_subject, patch_out_subject, stored_versions
from apps.modeling.services.training import request_retrain_later, serving_state
from apps.tenants.models import Tenant

logger = logging.getLogger("modeling.controls")


def remove_subject_from_models(tenant: Tenant, subject_key: str, *, reason: str) -> list[int]:
    """Rewrite every stored artifact holding the subject without them, audit it and request
    the retrain (``reason``: a ``TrainingRun.Reason``). Idempotent: a subject in no artifact
    changes nothing. Returns the numbers of the versions patched."""
    held: list[Any] = []
    try:
        with transaction.atomic():
            state = serving_state(tenant, lock=True)
            held = [v for v in stored_versions(tenant)
                    if holds_subject(v.artifact_path, subject_key)]
            for version in held:
                patch_out_subject(tenant, version, state, subject_key, keep_lineage=True)
            if held:
                audit.record(tenant, "modeling.subject_removed", None,
                             ("modeling.modelversion", ""),
                             {"versions": [v.number for v in held], "reason": reason},
                             subject_key=subject_key)
    finally:
        if held:  # durable even when a patch failed: the retrain removes the subject anyway
            request_retrain_later(tenant_id=tenant.pk, reason=reason)
    return [v.number for v in held]


def _training_stores_to_delete(restricted: bool) -> list[Any]:
    return [store for store in subject_data_stores()
            if store.model_effect == ModelEffect.TRAINING_DATA
            and not (restricted and isinstance(store.restrict, Frozen))]


def personalization_stopped(tenant_id: int, subject_keys: list[str]) -> None:
    """Consent listener (``register_personalization_stop_listener``): the subjects' level left
    "full". Their training data is deleted (kept, frozen, when restricted) and they leave
    every stored model. A subject back at "full" by now is left alone."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return
    views = get_subject_consent_views(tenant=tenant, subject_keys=subject_keys)
    for subject_key in subject_keys:
        view = views[subject_key]
        if view.level == "full":
            continue
        with transaction.atomic():
            deleted = {store.name: store.erase(tenant, subject_key)
                       for store in _training_stores_to_delete(view.restricted)}
            if any(deleted.values()):
                audit.record(tenant, "modeling.history_deleted", None, None,
                             {"level": view.level, "deleted": deleted},
                             subject_key=subject_key)
        remove_subject_from_models(tenant, subject_key,
                                   reason=TrainingRun.Reason.SUBJECT_CONTROL)


def rectify_subject(tenant: Tenant, subject_key: str, correction: Correction
                    ) -> dict[str, Any]:
    """The model store's part of a rectification (runs before the events store's, which
    deletes the interactions): when ``delete_events`` names some of the subject's
    interactions, the subject leaves every stored model now, so that no explanation names
    a removed interaction, and the retrain recomputes them from what remains."""
    event_ids = correction.changes.get("delete_events") or []
    if not event_ids or not list_subject_events(tenant=tenant, subject_key=subject_key).filter(
            event_id__in=event_ids).exists():
        return {}
    patched = remove_subject_from_models(tenant, subject_key,
                                         reason=TrainingRun.Reason.RECTIFICATION)
    return {"model_versions_patched": [f"v{n}" for n in patched]} if patched else {}
