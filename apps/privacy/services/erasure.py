"""Erasure (GDPR Art. 17 / CCPA delete): every registered handler's ``erase`` as one
checkpointed step of the request's job, a verification that the subject is gone, and the
receipt (its model section, final or "model update pending": :mod:`.receipts`)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from apps.audit import services as audit
from apps.core.jobs import fail_job, finish_job
from apps.core.subject_data import SubjectDataStore, subject_data_stores
from apps.privacy.models import ErasureTombstone, FulfilmentJob, PrivacyRequest
from apps.privacy.services.jobs import begin_job, run_step, steps_of
from apps.privacy.services.lifecycle import (
    CONSENT_SOURCES,
    Status,
    lock_request,
    transition_privacy_request,
)
from apps.privacy.services.notifications import notify_subject
from apps.privacy.services.receipts import FINAL, PENDING, final_audit_details, model_section
from apps.privacy.services.tombstones import store_on_commit
from apps.tenants.models import Tenant

logger = logging.getLogger("privacy.fulfilment")


def erase_subject(*, job: FulfilmentJob) -> None:
    """The erasure kind's job (kinds table): erase the request's subject everywhere, check
    that nothing is left, and send the receipt. Resumable: see :mod:`.jobs`."""
    pr = begin_job(job, on_start=begin_erasure)
    if pr is not None:
        run_erasure(job, pr)


def begin_erasure(pr: PrivacyRequest) -> None:
    """First moment of an erasure (inside the transaction that starts it): the tombstone that
    lets a restore replay it (a row, and after commit a record in the store outside the
    database), and a restriction that stops new data for the subject being
    stored while the handlers run (ingestion refuses events of restricted subjects)."""
    from apps.consent.services import set_restriction

    tombstone, _ = ErasureTombstone.objects.for_tenant(pr.tenant_id).get_or_create(
        tenant_id=pr.tenant_id, subject_key=pr.subject_key, privacy_request=pr,
        defaults={"erased_at": timezone.now()})
    store_on_commit(tombstone)  # the copy outside the database that a restore keeps
    set_restriction(tenant=pr.tenant, subject_key=pr.subject_key, restricted=True,
                    source=CONSENT_SOURCES[pr.channel])


def _model_versions(data: Any) -> list[str]:
    versions = data.get("model_versions") if isinstance(data, dict) else None
    if not isinstance(versions, list):
        return []
    return [str(v.get("model_version", v.get("number", "?")) if isinstance(v, dict) else v)
            for v in versions]


def _describe(pr: PrivacyRequest) -> dict[str, Any]:
    """Before anything is erased: what the receipt must name afterwards. The stores'
    erasure describers (by store name), plus, for a store without one that keeps data
    outside tables (``models=()``: model artifacts, files), the model versions its export
    lists."""
    details: dict[str, Any] = {}
    versions: list[str] = []
    for store in subject_data_stores():
        if store.describe_erasure is not None:
            try:
                details[store.name] = store.describe_erasure(pr.tenant, pr.subject_key)
            except Exception:  # a description is for the receipt; it must not block erasure
                logger.exception("privacy.erasure_describer_failed name=%s", store.name)
                details[store.name] = {"error": "could not be described"}
            versions += _model_versions(details[store.name])
        elif not store.models:
            try:
                versions += _model_versions(store.export(pr.tenant, pr.subject_key))
            except Exception:
                logger.exception("privacy.erasure_describe_failed handler=%s", store.name)
    return {"details": json.loads(json.dumps(details, cls=DjangoJSONEncoder)),
            "model_versions": list(dict.fromkeys(versions))}


def erase_with_handler(handler: SubjectDataStore, tenant: Tenant, subject_key: str) -> int:
    return int(handler.erase(tenant, subject_key) or 0)


def run_erasure(job: FulfilmentJob, pr: PrivacyRequest) -> None:
    tenant = pr.tenant
    run_step(job, "describe", lambda: _describe(pr))
    for handler in subject_data_stores():
        def work(h: SubjectDataStore = handler) -> dict[str, Any]:
            return {"count": erase_with_handler(h, tenant, pr.subject_key),
                    "category": h.category}

        def audit_step(step: dict[str, Any], h: SubjectDataStore = handler) -> None:
            audit.record(tenant, "privacy.erasure_step", None, pr,
                         {"handler": h.name, "category": h.category, "count": step["count"],
                          "reference": pr.reference[:8]})

        run_step(job, handler.name, work, audit_step)
    from apps.privacy.services.erasure_check import verify_erasure

    check = verify_erasure(privacy_request=pr)
    if check.hits:
        # Something came back or was left (data arriving while the handlers ran, a file a
        # handler removes only after its commit): every handler once more, then look again.
        _sweep(job, pr)
        check = verify_erasure(privacy_request=pr)
    if check.hits:
        with transaction.atomic():
            locked = lock_request(pr)
            locked.last_error = (f"erasure verification found the subject in "
                                 f"{len(check.hits)} place(s)")
            locked.save(update_fields=["last_error", "updated_at"])
            # Retryable: the sweeper runs the job again later (sweep + check), up to
            # max_attempts; then it is failed for good, visibly, and the request stays open.
            fail_job(job, locked.last_error, retryable=True)
        logger.error("privacy.erasure_not_verified id=%s hits=%s", pr.pk, len(check.hits))
        return
    with transaction.atomic():
        locked = lock_request(pr)
        if locked.status != Status.IN_PROGRESS:
            finish_job(job, outcome=f"request already {locked.status}")
            return
        receipt = build_receipt(locked, check.as_dict())
        now = datetime.fromisoformat(receipt["completed_at"])
        receipt["model"] = model_section(locked, receipt, now=now)
        locked.result = {**locked.result, "receipt": receipt}
        locked.last_error = ""
        locked.model_update_pending = receipt["model"]["status"] == PENDING
        locked.save(update_fields=["result", "last_error", "model_update_pending",
                                   "updated_at"])
        audit.record(locked.tenant, "privacy.erasure_receipt", None, locked,
                     {"reference": locked.reference[:8], "total": receipt["total"],
                      "categories": {c["handler"]: c["count"] for c in receipt["categories"]},
                      "model_versions": receipt["model_versions"],
                      "model": receipt["model"]["status"]})
        if receipt["model"]["status"] == FINAL:
            audit.record(locked.tenant, "privacy.erasure_receipt_final", None, locked,
                         final_audit_details(locked, receipt["model"]))
        notify_subject(locked, "completed", {"receipt": receipt})
        transition_privacy_request(locked, to=Status.COMPLETED)
        finish_job(job, outcome="erased", total=receipt["total"])


def _sweep(job: FulfilmentJob, pr: PrivacyRequest) -> None:
    """Run every handler's erase again (each is idempotent); the counts are kept beside the
    checkpoints and added to the receipt."""
    counts: dict[str, int] = {}
    for handler in subject_data_stores():
        with transaction.atomic():
            counts[handler.name] = erase_with_handler(handler, pr.tenant, pr.subject_key)
    with transaction.atomic():
        locked = FulfilmentJob.objects.for_tenant(job.tenant_id).select_for_update().get(pk=job.pk)
        locked.progress = {**locked.progress,
                           "sweeps": [*locked.progress.get("sweeps", []), counts]}
        locked.save(update_fields=["progress", "updated_at"])
        job.progress = locked.progress
        audit.record(pr.tenant, "privacy.erasure_sweep", None, pr,
                     {"reference": pr.reference[:8],
                      "counts": {k: v for k, v in counts.items() if v}})


def build_receipt(pr: PrivacyRequest, check: dict[str, Any]) -> dict[str, Any]:
    """What was erased: categories and counts, model versions touched, when, and the
    verification that found nothing left. Holds no identifier."""
    steps = steps_of(pr)
    handlers = {h.name: h for h in subject_data_stores()}
    categories = [
        {"handler": name, "category": step.get("category", handlers.get(name, name)),
         "count": int(step.get("count", 0))}
        for name, step in steps.items() if name != "describe" and "count" in step
    ]
    versions = [str(v) for v in steps.get("describe", {}).get("model_versions", [])]
    return {
        "reference": pr.reference,
        "received_at": pr.received_at.isoformat(),
        "started_at": pr.started_at.isoformat() if pr.started_at else None,
        "completed_at": timezone.now().isoformat(),
        "categories": categories,
        "total": sum(c["count"] for c in categories),
        "model_versions": versions,
        "details": steps.get("describe", {}).get("details", {}),
        "note": "Counts include the restriction recorded when the erasure started, which "
                "kept new data out while it ran.",
        "verification": {"hits": len(check.get("hits", [])),
                         "places_checked": len(check.get("places", [])),
                         "checked_at": check.get("checked_at")},
    }
