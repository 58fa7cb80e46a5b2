"""The model side of an erasure receipt (issue 14, item 6).

An erasure removes the subject's rows at once and patches them out of the model in service
(their factor row, their interactions), but what that model learned from their data as part
of the whole goes only with a retrain that leaves them out. So the receipt has a ``model``
section, which says *model update pending* until the model in service is shown to have
been trained on a snapshot that did not contain the subject's key, and then becomes final:
the version, that fact, the SHA-256 of its artifact file and when.

**The proof** (:func:`_judge`), for a stored version ``V`` and the subject's key ``K``, read
from ``V``'s artifact *file* (``stored_model_evidence``), not from the row describing it:

1. the file can be read and its SHA-256 is the one recorded for ``V``;
2. ``K`` is not in the file's subject index, nor in ``V``'s lineage of subjects patched
   out by a subject control;
3. the file's subject index is the training snapshot's as far as ``K`` goes: either the
   file is exactly what training wrote (``revision == 0``), or nothing can have patched
   ``K`` out of it since: every erasure of ``K`` (tombstones) had finished before ``V`` was
   registered (``registered_after_erasure``), or ``V`` already existed when this erasure
   began and did not hold ``K`` then (the receipt's describe step did not name it) and no
   other erasure of ``K`` finished after ``V`` was registered (``absent_when_erasure_began``).

Patches are the only way a file loses a subject (``patch_out_subject``: a subject control,
which keeps the lineage, or an erasure, which leaves a tombstone), so 1-3 prove that ``V``'s
training snapshot did not contain ``K``.

**Outcomes.** With a version in service: final when it passes (``retrained`` when it was
registered after this erasure began, ``not_trained_on_subject`` when it predates it),
else pending with the reason. With none in service: final when every stored version passes
(``no_model_in_service``; ``no_model`` when none is stored, or the tenant never trained one);
else pending. A final section stays final: it records a fact about that version at that
time (a subject who comes back and consents again may be in later models, legitimately).

**When.** At completion (:func:`model_section`, in the erasure's last transaction); after
the commit of every activation (the modeling app's activation listener enqueues
:func:`finalise_model_receipts` for the tenant); and hourly, as the backstop for a crash
between an activation and that task (:func:`reconcile_model_receipts`, run by housekeeping).
Pending requests carry ``PrivacyRequest.model_update_pending``. The audit entry
``privacy.erasure_receipt_final`` marks the moment a receipt becomes final.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from apps.audit import services as audit
from apps.modeling.selectors import list_model_versions, list_training_runs
from apps.modeling.services import ArtifactEvidence, stored_model_evidence
from apps.privacy.models import ErasureTombstone, PrivacyRequest
from apps.privacy.services.lifecycle import lock_request
from apps.tenants.models import Tenant

logger = logging.getLogger("privacy.receipts")

PENDING = "pending"
FINAL = "final"
#: The section's status as stored (English) and shown (``model_label``: translated).
LABELS = {PENDING: gettext_noop("model update pending"), FINAL: gettext_noop("final")}

_PROBLEMS = {"missing": gettext_noop("the file is missing"),
             "unreadable": gettext_noop("the file could not be read")}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "?"


# --- The proof ---------------------------------------------------------------------------------


class _Context:
    """What the proof needs about one erasure: its subject, when it began and finished,
    the versions its describe step named, and when every other erasure of the subject
    finished (``None``: not yet)."""

    def __init__(self, pr: PrivacyRequest, receipt: dict[str, Any], finished_at: datetime
                 ) -> None:
        self.subject_key = pr.subject_key
        self.started_at = pr.started_at
        self.finished_at = finished_at
        self.described = {str(v) for v in receipt.get("model_versions", [])}
        details = receipt.get("details") or {}
        # A describer that failed named nothing: "not named" then proves nothing.
        self.described_ok = not any(isinstance(d, dict) and "error" in d
                                    for d in details.values())
        self.other_erasures: list[datetime | None] = []
        for tombstone in (ErasureTombstone.objects.for_tenant(pr.tenant_id)
                          .filter(subject_key=pr.subject_key).exclude(privacy_request=pr)
                          .select_related("privacy_request")):
            other = tombstone.privacy_request
            if other is None:  # its request record is gone (retention): long finished
                self.other_erasures.append(tombstone.erased_at)
            else:
                self.other_erasures.append(other.closed_at)


def _judge(e: ArtifactEvidence, ctx: _Context) -> tuple[bool, str]:
    """``(proved, method or reason)``: was ``e``'s training snapshot without the subject?
    See the module docstring."""
    if e.error:
        return False, "artifact_unreadable"
    if not e.checksum_matches:
        return False, "artifact_checksum_mismatch"
    if e.in_file(ctx.subject_key) or e.in_lineage(ctx.subject_key):
        return False, "model_holds_subject"
    if e.revision == 0:
        return True, "unchanged_since_training"
    others_done = all(done is not None and done <= e.created_at for done in ctx.other_erasures)
    if others_done and ctx.finished_at <= e.created_at:
        return True, "registered_after_erasure"
    if (others_done and ctx.described_ok and ctx.started_at is not None
            and e.created_at < ctx.started_at and e.label not in ctx.described):
        return True, "absent_when_erasure_began"
    return False, "not_shown_retrained"


# --- The section -------------------------------------------------------------------------------


def _version(e: ArtifactEvidence) -> dict[str, Any]:
    return {"id": e.version_id, "number": e.number, "label": e.label,
            "trained_at": _iso(e.created_at), "snapshot_at": _iso(e.consent_snapshot_at),
            "activated_at": _iso(e.activated_at)}


def _retrain(tenant: Tenant, since: datetime) -> dict[str, Any] | None:
    """The newest training run of the tenant not finished before ``since``."""
    run = (list_training_runs(tenant=tenant)
           .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=since)).first())
    if run is None:
        return None
    return {"status": run.status,
            "at": _iso(run.finished_at or run.started_at or run.created_at)}


_RETRAIN_TEXT = {
    None: gettext_noop("No retrain has started since your erasure."),
    "pending": gettext_noop("A retrain is waiting to start."),
    "running": gettext_noop("A retrain is running."),
    "failed": gettext_noop("The last retrain since your erasure failed; this stays pending "
                           "until one succeeds."),
    "succeeded": "",
}
_BECOMES_FINAL = gettext_noop(" This receipt becomes final when a model trained without your "
                              "data is in service.")


def _pending_text(section: dict[str, Any]) -> str:
    """The sentence of a pending section, from its fields, in the active language."""
    version = section.get("model_version")
    label = version["label"] if version else ""
    reason = section["reason"]
    if version is None:
        text = gettext(
            "Model update pending: no recommendation model is in service, and it is not yet "
            "shown that the stored one(s) (%(versions)s) were trained without your data. This "
            "receipt becomes final when that is shown, or when a model trained without your "
            "data is in service.") % {"versions": ", ".join(section["open_versions"])}
    elif reason == "model_holds_subject":
        text = gettext(
            "Model update pending: the recommendation model in service (%(label)s) was "
            "trained on data that included you, so it is not a model trained without your "
            "data. The service's staff see this on your request.") % {"label": label}
    elif reason in ("artifact_unreadable", "artifact_checksum_mismatch"):
        problem = (gettext(_PROBLEMS.get(section.get("problem") or "",
                                         _PROBLEMS["unreadable"]))
                   if reason == "artifact_unreadable"
                   else gettext("its checksum is not the one recorded"))
        text = gettext(
            "Model update pending: the file of the recommendation model in service "
            "(%(label)s) could not be checked (%(problem)s); the check is repeated.") % {
            "label": label, "problem": problem}
    else:
        text = gettext("Model update pending: it is not yet shown that the recommendation "
                       "model in service (%(label)s) was trained without your data.") % {
            "label": label}
        if section.get("learned_from_subject"):
            text += gettext(" It had learned from your data: your own entries were removed "
                            "from it when your data was erased, and a retrain without you was "
                            "requested.")
        text += gettext(_BECOMES_FINAL)
    retrain = section.get("retrain")
    extra = _RETRAIN_TEXT.get(retrain["status"] if retrain else None, "")
    return f"{text} {gettext(extra) if extra else ''}".strip()


def _final_text(section: dict[str, Any]) -> str:
    """The sentence of a final section, from its fields, in the active language."""
    version = section.get("model_version")
    if version is not None:
        activated = version.get("activated_at")
        values = {"label": version["label"], "sha": section["artifact_sha256"]}
        if activated:
            values["since"] = _day(datetime.fromisoformat(activated))
            text = gettext(
                "Final: the recommendation model in service, %(label)s (in service since "
                "%(since)s UTC), was trained on data that did not contain your key; we "
                "checked this in its file (SHA-256 %(sha)s).") % values
        else:
            text = gettext(
                "Final: the recommendation model in service, %(label)s, was trained on data "
                "that did not contain your key; we checked this in its file (SHA-256 "
                "%(sha)s).") % values
        if section["outcome"] == "not_trained_on_subject":
            text += gettext(" It was trained before your erasure and never learned from your "
                            "data, so there was nothing to retrain.")
        return text
    stored = [v["label"] for v in (section.get("verification") or {}).get("versions", [])]
    if stored:
        return gettext(
            "Final: no recommendation model is in service, and the stored ones (%(versions)s) "
            "were trained on data that did not contain your key (checked in their files).") % {
            "versions": ", ".join(stored)}
    if section["ever_trained"]:
        return gettext("Final: no recommendation model is stored (none is in service), so "
                       "none holds anything learned from your data.")
    return gettext("Final: this service has never had a recommendation model, so no model "
                   "learned from your data.")


#: The fields each status's sentence is built from (a section written before they were
#: kept has only its English ``text``).
_TEXT_FIELDS = {PENDING: ("reason", "model_version", "retrain", "open_versions"),
                FINAL: ("outcome", "model_version", "artifact_sha256", "ever_trained")}


def model_label(section: dict[str, Any]) -> str | None:
    """The section's status in the active language (``None``: an unknown status)."""
    label = LABELS.get(section.get("status") or "")
    return gettext(label) if label else None


def model_text(section: dict[str, Any]) -> str | None:
    """The section's sentence in the active language, from its fields; ``None`` for a
    section written without them (then only its stored English ``text`` says it)."""
    status = section.get("status")
    if status not in _TEXT_FIELDS or any(f not in section for f in _TEXT_FIELDS[status]):
        return None
    return _pending_text(section) if status == PENDING else _final_text(section)


def _english_text(section: dict[str, Any]) -> str:
    """The stored ``text``: English, whatever language is active (exports, the admin)."""
    with translation.override("en"):
        return model_text(section) or ""


def _read_models(tenant: Tenant) -> list[ArtifactEvidence]:
    """The version in service, read from its file; every stored one when none serves (the
    files can be large: the others are not read when they are not needed)."""
    return (stored_model_evidence(tenant, active_only=True)
            or stored_model_evidence(tenant))


def compute_model_section(pr: PrivacyRequest, receipt: dict[str, Any], *,
                          finished_at: datetime, now: datetime,
                          stored: list[ArtifactEvidence] | None = None) -> dict[str, Any]:
    """The receipt's model section as the stored models show it now (reads only).
    ``finished_at``: when the erasure finished (its receipt was written)."""
    if stored is None:
        stored = _read_models(pr.tenant)
    ctx = _Context(pr, receipt, finished_at)
    active = next((e for e in stored if e.is_active), None)
    judged = [(e, *_judge(e, ctx)) for e in ([active] if active is not None else stored)]
    if all(ok for _, ok, _ in judged):
        if active is not None:
            outcome = ("not_trained_on_subject" if ctx.started_at is not None
                       and active.created_at < ctx.started_at else "retrained")
        else:
            outcome = "no_model_in_service" if stored else "no_model"
        any_version = bool(stored) or list_model_versions(tenant=pr.tenant).exists()
        section: dict[str, Any] = {
            "status": FINAL, "label": LABELS[FINAL], "outcome": outcome,
            "model_version": _version(active) if active is not None else None,
            "snapshot_contained_subject": False,
            "artifact_sha256": active.file_sha256 if active is not None else None,
            "verification": {
                "checked_at": now.isoformat(),
                "versions": [{"label": e.label, "artifact_sha256": e.file_sha256,
                              "artifact_checksum_matches": True,
                              "subject_key_in_artifact": False,
                              "artifact_revision": e.revision, "method": method}
                             for e, _, method in judged]},
            "final_at": now.isoformat(),
            "ever_trained": any_version,
        }
        section["text"] = _english_text(section)
        return section
    reason = next(why for _, ok, why in judged if not ok)
    retrain = _retrain(pr.tenant, finished_at)
    section = {
        "status": PENDING, "label": LABELS[PENDING], "reason": reason,
        "model_version": _version(active) if active is not None else None,
        "since": finished_at.isoformat(), "checked_at": now.isoformat(),
        "retrain": retrain,
        # What the sentence names (model_text): the versions not shown clean when none
        # serves, whether the one in service had learned from the subject, a file's problem.
        "open_versions": ([e.label for e in stored if not _judge(e, ctx)[0]]
                          if active is None else []),
        "learned_from_subject": active is not None and active.label in ctx.described,
        "problem": active.error if active is not None else None,
    }
    section["text"] = _english_text(section)
    return section


def model_section(pr: PrivacyRequest, receipt: dict[str, Any], *, now: datetime
                  ) -> dict[str, Any]:
    """The section a new receipt starts with (the erasure's last transaction): final at
    once when the model in service already passes, else pending."""
    return compute_model_section(pr, receipt, finished_at=now, now=now)


def final_audit_details(pr: PrivacyRequest, section: dict[str, Any]) -> dict[str, Any]:
    version = section.get("model_version") or {}
    return {"reference": pr.reference[:8], "outcome": section["outcome"],
            "model_version": version.get("number"),
            "artifact_sha256": section.get("artifact_sha256"),
            "methods": [v["method"] for v in section["verification"]["versions"]]}


# --- Finalising ---------------------------------------------------------------------------------


def _unchanged(tenant: Tenant, stored: Iterable[ArtifactEvidence]) -> bool:
    """Each version still as it was read: same status, revision and recorded checksum."""
    for e in stored:
        if not list_model_versions(tenant=tenant).filter(
                pk=e.version_id, status=e.status, revision=e.revision,
                artifact_sha256=e.recorded_sha256, artifact_destroyed_at__isnull=True).exists():
            return False
    return True


def _comparable(section: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in ("checked_at", "text")}


def finalise_model_receipts(*, tenant: Tenant, now: datetime | None = None) -> dict[str, int]:
    """Check every receipt of ``tenant`` still saying "model update pending" against the
    models stored now; write the final section (and its audit entry) where the proof
    holds, refresh the pending one where what it reports changed. Idempotent: a final
    receipt is never touched again; each request is locked while it is written."""
    now = now or timezone.now()
    done = {"final": 0, "pending": 0}
    pending = list(PrivacyRequest.objects.for_tenant(tenant)
                   .filter(model_update_pending=True).order_by("pk"))
    if not pending:
        return done
    stored = _read_models(tenant)
    for candidate in pending:
        with transaction.atomic():
            pr = lock_request(candidate)
            receipt = (pr.result or {}).get("receipt")
            if not pr.model_update_pending or not isinstance(receipt, dict):
                continue
            finished = pr.completed_at or now
            section = compute_model_section(pr, receipt, finished_at=finished, now=now,
                                            stored=stored)
            if section["status"] == FINAL and not _unchanged(tenant, stored):
                done["pending"] += 1  # a model changed while it was read: the next run
                continue
            previous = receipt.get("model") or {}
            if section["status"] == PENDING:
                done["pending"] += 1
                if section["reason"] == "model_holds_subject":
                    logger.error("privacy.receipt_model_holds_subject id=%s version=%s",
                                 pr.pk, (section["model_version"] or {}).get("number"))
                if previous and _comparable(previous) == _comparable(section):
                    continue
            pr.result = {**pr.result, "receipt": {**receipt, "model": section}}
            pr.model_update_pending = section["status"] == PENDING
            pr.save(update_fields=["result", "model_update_pending", "updated_at"])
            if section["status"] == FINAL:
                audit.record(pr.tenant, "privacy.erasure_receipt_final", None, pr,
                             final_audit_details(pr, section))
                done["final"] += 1
    return done


def reconcile_model_receipts(*, now: datetime | None = None) -> dict[str, int]:
    """Beat (hourly, with housekeeping): :func:`finalise_model_receipts` for every tenant
    with a pending receipt, the backstop for an activation whose listener never ran."""
    totals = {"final": 0, "pending": 0}
    # Crosses tenants on purpose: the sweep looks at every tenant's pending receipts.
    tenant_ids = set(PrivacyRequest.all_tenants.filter(model_update_pending=True)
                     .values_list("tenant_id", flat=True))
    for tenant in Tenant.objects.filter(pk__in=tenant_ids).order_by("pk"):
        try:
            counts = finalise_model_receipts(tenant=tenant, now=now)
        except Exception:  # one tenant's broken model must not stop the others
            logger.exception("privacy.receipt_reconcile_failed tenant=%s", tenant.pk)
            continue
        for key, value in counts.items():
            totals[key] += value
    return totals


def on_model_activated(tenant_id: int, version_id: int) -> None:
    """Modeling's activation listener (after commit): check the tenant's pending receipts
    in a task. Losing this message loses nothing: the hourly reconcile finds them."""
    from apps.privacy.tasks import finalise_model_receipts_task

    if PrivacyRequest.objects.for_tenant(tenant_id).filter(model_update_pending=True).exists():
        finalise_model_receipts_task.delay(tenant_id)


def _names_version(receipt: dict[str, Any], number: int) -> bool:
    section = receipt.get("model") or {}
    in_section = (section.get("model_version") or {}).get("number") == number
    return in_section or f"v{number}" in [str(v) for v in receipt.get("model_versions", [])]


def erasure_refers_to_version(tenant: Tenant, version: Any) -> str | None:
    """Modeling's version guard: why ``version`` may not be deleted while an erasure is
    unfinished. An erasure in progress may still patch any stored artifact (and describes
    the versions holding the subject); a receipt still waiting for its model update names
    the versions its proof is about."""
    running = (PrivacyRequest.objects.for_tenant(tenant)
               .filter(kind="erasure", status=PrivacyRequest.Status.IN_PROGRESS)
               .values_list("reference", flat=True).first())
    if running is not None and version.has_artifact:
        return (f"v{version.number} cannot be deleted while an erasure is in progress "
                f"(request {running[:8]}): it may still change this version's artifact. "
                "Retire it instead, or try again once the erasure is complete.")
    for reference, result in (PrivacyRequest.objects.for_tenant(tenant)
                              .filter(model_update_pending=True)
                              .values_list("reference", "result")):
        if _names_version((result or {}).get("receipt") or {}, version.number):
            return (f"v{version.number} is referred to by an erasure whose receipt is still "
                    f"waiting for the model update (request {reference[:8]}). Retire it "
                    "instead; it can be deleted once that receipt is final.")
    return None
