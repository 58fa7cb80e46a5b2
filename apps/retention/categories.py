"""The built-in retention categories, registered by ``RetentionConfig.ready``: interaction
events, inactive subjects, the consent ledger, export files, closed privacy requests,
erasure tombstones, model artifacts and audit entries.

Each category finds what is expired with one predicate on indexed columns and deletes it in
batches of at most ``batch_size`` rows per statement, each batch in its own short
transaction (the caller's), so a run never holds long locks and never blocks ingestion.
Counting uses the same predicate, which is why a dry run reports exactly what the run then
deletes. The order matters and is part of that guarantee:

1. ``events`` first: every event older than the cutoff goes.
2. ``inactive_subjects`` uses the events period (DESIGN: subjects inactive for the event
   retention period are removed entirely). A subject is inactive when they have no event,
   no consent change, no portal visit and no privacy request since the cutoff (and no open
   request). They are found through the models this category governs (consent state, audit
   token, portal sessions, ...) and erased through the privacy registry's handlers for those
   models, so the ledger proof stays and ages out under its own rule.
3. ``consent_ledger``: a subject's whole ledger goes 5 years after their last change.
4. ``exports`` (before the requests they belong to), ``closed_privacy_requests``,
   ``erasure_tombstones``, ``model_artifacts``.
5. ``audit_entries`` last, through ``apps.audit.services.prune_audit_events`` (which keeps
   the hash chain verifiable); the receipts written by the earlier categories are then the
   newest entries, so every entry older than the cutoff can go.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import Exists, OuterRef

from apps.retention.registry import (
    PurgeResult,
    RetentionCategory,
    category_models,
    register_retention_category,
)
from apps.tenants.models import Tenant

logger = logging.getLogger("retention.categories")

EVENTS = "events"
INACTIVE_SUBJECTS = "inactive_subjects"
CONSENT_LEDGER = "consent_ledger"
AUDIT_ENTRIES = "audit_entries"
EXPORTS = "exports"
CLOSED_REQUESTS = "closed_privacy_requests"
TOMBSTONES = "erasure_tombstones"
MODEL_ARTIFACTS = "model_artifacts"

#: Candidate subjects examined per batch (each inactive one costs a few small deletes).
SUBJECTS_PER_BATCH = 500


# --- Events -------------------------------------------------------------------------------


def _expired_events(tenant: Tenant, cutoff: datetime) -> models.QuerySet:
    from apps.events.models import Event

    # Served by event_tenant_time_idx (tenant, occurred_at).
    return Event.objects.for_tenant(tenant).filter(occurred_at__lt=cutoff)


def count_expired_events(tenant: Tenant, cutoff: datetime) -> int:
    return _expired_events(tenant, cutoff).count()


def purge_expired_events(tenant: Tenant, cutoff: datetime, batch_size: int,
                         state: dict[str, Any]) -> PurgeResult:
    """One ``DELETE ... WHERE id IN (SELECT id ... LIMIT batch_size)``: row locks on at most
    ``batch_size`` old rows, none on the rows ingestion is inserting."""
    from apps.events.models import Event

    batch = _expired_events(tenant, cutoff).order_by().values("pk")[:batch_size]
    deleted, _ = Event.objects.for_tenant(tenant).filter(pk__in=batch).delete()
    return PurgeResult(deleted=deleted, done=deleted < batch_size)


# --- Inactive subjects --------------------------------------------------------------------


def _activity(tenant: Tenant, cutoff: datetime) -> list[models.QuerySet]:
    """Querysets of a subject's activity since ``cutoff``, filtered by subject_key later:
    an event, a consent change, a privacy-portal visit, a privacy request received since
    the cutoff or still open (a subject is never removed in the middle of a request)."""
    from apps.consent.models import ConsentRecord
    from apps.events.models import Event
    from apps.privacy.models import PortalSession, PrivacyRequest

    return [
        Event.objects.for_tenant(tenant).filter(occurred_at__gte=cutoff),
        ConsentRecord.objects.for_tenant(tenant).filter(captured_at__gte=cutoff),
        PortalSession.objects.for_tenant(tenant).filter(created_at__gte=cutoff),
        PrivacyRequest.objects.for_tenant(tenant).filter(
            models.Q(received_at__gte=cutoff)
            | models.Q(status__in=list(PrivacyRequest.OPEN_STATUSES))),
    ]


def _presence_models() -> list[type[models.Model]]:
    """Where an inactive subject can still be found: the models this category governs."""
    found = []
    for label in category_models(INACTIVE_SUBJECTS):
        model = apps.get_model(label)
        if any(f.name == "subject_key" for f in model._meta.get_fields()):
            found.append(model)
    return found


def _erasers() -> list[Any]:
    """The privacy registry's handlers for the models this category governs (never the
    ledger's: its proof is kept by the ledger rule)."""
    from apps.privacy.registry import subject_handlers

    governed = set(category_models(INACTIVE_SUBJECTS))
    return [h for h in subject_handlers() if h.models and set(h.models) <= governed]


def count_inactive_subjects(tenant: Tenant, cutoff: datetime) -> int:
    """Distinct subjects present in a governed model with no activity since ``cutoff``."""
    keys = []
    for model in _presence_models():
        present = model.objects.for_tenant(tenant).order_by()
        for recent in _activity(tenant, cutoff):
            present = present.exclude(Exists(recent.filter(subject_key=OuterRef("subject_key"))))
        keys.append(present.values_list("subject_key", flat=True))
    if not keys:
        return 0
    return keys[0].union(*keys[1:]).count() if len(keys) > 1 else keys[0].distinct().count()


def purge_inactive_subjects(tenant: Tenant, cutoff: datetime, batch_size: int,
                            state: dict[str, Any]) -> PurgeResult:
    """Examine the next chunk of subjects (keyset cursor ``state``: model index and last
    subject key) and erase the inactive ones through the privacy handlers."""
    presence = _presence_models()
    index, after = int(state.get("model", 0)), str(state.get("after", ""))
    chunk = max(1, min(batch_size, SUBJECTS_PER_BATCH))
    while index < len(presence):
        # One query: the next chunk of subjects, each with whether any activity exists since
        # the cutoff (EXISTS stops at the first row, however busy the subject is).
        activity = _activity(tenant, cutoff)
        flags = {f"active_{n}": Exists(q.filter(subject_key=OuterRef("subject_key")))
                 for n, q in enumerate(activity)}
        candidates = list(
            presence[index].objects.for_tenant(tenant).filter(subject_key__gt=after)
            .order_by("subject_key").values("subject_key").distinct()
            .annotate(**flags)[:chunk]
        )
        if not candidates:
            index, after = index + 1, ""
            continue
        keys = [row["subject_key"] for row in candidates]
        inactive = [row["subject_key"] for row in candidates
                    if not any(row[flag] for flag in flags)]
        erased_rows = 0
        erasers = _erasers()
        for subject_key in inactive:
            for handler in erasers:
                erased_rows += handler.erase(tenant, subject_key)
        return PurgeResult(deleted=len(inactive), done=False, rows=erased_rows,
                           state={"model": index, "after": keys[-1]})
    return PurgeResult(deleted=0, done=True, rows=0, state={"model": index, "after": ""})


# --- Consent ledger -----------------------------------------------------------------------


def _expired_ledger(tenant: Tenant, cutoff: datetime) -> models.QuerySet:
    from apps.consent.models import ConsentRecord

    changed_since = ConsentRecord.objects.for_tenant(tenant).filter(
        subject_key=OuterRef("subject_key"), captured_at__gte=cutoff)
    # Served by consentrecord_subject_idx (tenant, subject_key, captured_at).
    return (ConsentRecord.objects.for_tenant(tenant).filter(captured_at__lt=cutoff)
            .exclude(Exists(changed_since)))


def count_expired_ledger(tenant: Tenant, cutoff: datetime) -> int:
    return _expired_ledger(tenant, cutoff).count()


def purge_expired_ledger(tenant: Tenant, cutoff: datetime, batch_size: int,
                         state: dict[str, Any]) -> PurgeResult:
    from apps.consent.models import ConsentRecord

    batch = _expired_ledger(tenant, cutoff).order_by().values("pk")[:batch_size]
    deleted, _ = ConsentRecord.objects.for_tenant(tenant).filter(pk__in=batch).delete()
    return PurgeResult(deleted=deleted, done=deleted < batch_size)


# --- Audit entries ------------------------------------------------------------------------


def count_expired_audit_entries(tenant: Tenant, cutoff: datetime) -> int:
    from apps.audit.models import AuditEvent

    return AuditEvent.objects.for_tenant(tenant).filter(occurred_at__lt=cutoff).count()


def purge_expired_audit_entries(tenant: Tenant, cutoff: datetime, batch_size: int,
                                state: dict[str, Any]) -> PurgeResult:
    """Prune the oldest ``batch_size`` or so entries. ``prune_audit_events`` deletes by
    time; bounding its ``before`` by the time of the next entry past the batch keeps one
    transaction to about one batch (entries sharing a timestamp may make it larger)."""
    from apps.audit.models import AuditEvent
    from apps.audit.services import prune_audit_events

    old = AuditEvent.objects.for_tenant(tenant).filter(occurred_at__lt=cutoff)
    first = old.order_by("sequence").values_list("occurred_at", flat=True).first()
    boundary = list(old.order_by("sequence").values_list("occurred_at", flat=True)
                    [batch_size:batch_size + 1])
    last_batch = not boundary or first is None or boundary[0] <= first
    before = cutoff if last_batch else min(cutoff, boundary[0])
    deleted = prune_audit_events(tenant=tenant, before=before, batch_size=batch_size)
    return PurgeResult(deleted=deleted, done=last_batch or deleted == 0)


# --- Export files -------------------------------------------------------------------------


def _export_ttl() -> timedelta:
    from apps.privacy.services.fulfilment import EXPORT_TTL

    return EXPORT_TTL


def _expired_exports(tenant: Tenant, cutoff: datetime) -> models.QuerySet:
    """Export files still on disk whose expiry has passed. The privacy app sets each
    export's ``expires_at`` (made + its ``EXPORT_TTL``, the 7 days of this policy), so with
    ``cutoff = run time - 7 days`` this is ``expires_at <= run time``."""
    from apps.privacy.models import DataExport

    return DataExport.objects.for_tenant(tenant).filter(
        deleted_at__isnull=True, expires_at__lte=cutoff + _export_ttl())


def count_expired_exports(tenant: Tenant, cutoff: datetime) -> int:
    return _expired_exports(tenant, cutoff).count()


def purge_expired_exports(tenant: Tenant, cutoff: datetime, batch_size: int,
                          state: dict[str, Any]) -> PurgeResult:
    """Through the privacy app's ``delete_export_files`` (files, download tokens, contact;
    the row stays with the request's record). A handful of files a day: one batch."""
    from apps.privacy.services import delete_export_files

    deleted = delete_export_files(tenant=tenant, now=cutoff + _export_ttl())
    return PurgeResult(deleted=deleted, done=True)


# --- Closed privacy requests --------------------------------------------------------------


def _expired_requests(tenant: Tenant, cutoff: datetime) -> models.QuerySet:
    from apps.privacy.models import PrivacyRequest

    return PrivacyRequest.objects.for_tenant(tenant).filter(closed_at__lt=cutoff)


def count_expired_requests(tenant: Tenant, cutoff: datetime) -> int:
    return _expired_requests(tenant, cutoff).count()


def purge_expired_requests(tenant: Tenant, cutoff: datetime, batch_size: int,
                           state: dict[str, Any]) -> PurgeResult:
    """Request records closed before the cutoff, with what hangs off them (verification
    challenges, fulfilment jobs, the export row whose file the ``exports`` category deleted
    earlier in the run); tombstones stay (their link is set to null)."""
    from apps.privacy.models import PrivacyRequest

    pks = list(_expired_requests(tenant, cutoff).order_by("closed_at", "pk")
               .values_list("pk", flat=True)[:batch_size])
    if not pks:
        return PurgeResult(deleted=0, done=True, rows=0)
    rows, per_model = PrivacyRequest.objects.for_tenant(tenant).filter(pk__in=pks).delete()
    deleted = per_model.get(PrivacyRequest._meta.label, 0)
    return PurgeResult(deleted=deleted, done=len(pks) < batch_size, rows=rows)


# --- Erasure tombstones -------------------------------------------------------------------


def _expired_tombstones(tenant: Tenant, cutoff: datetime) -> models.QuerySet:
    from apps.privacy.models import ErasureTombstone

    return ErasureTombstone.objects.for_tenant(tenant).filter(erased_at__lt=cutoff)


def count_expired_tombstones(tenant: Tenant, cutoff: datetime) -> int:
    return _expired_tombstones(tenant, cutoff).count()


def purge_expired_tombstones(tenant: Tenant, cutoff: datetime, batch_size: int,
                             state: dict[str, Any]) -> PurgeResult:
    from apps.privacy.models import ErasureTombstone

    batch = _expired_tombstones(tenant, cutoff).order_by().values("pk")[:batch_size]
    deleted, _ = ErasureTombstone.objects.for_tenant(tenant).filter(pk__in=batch).delete()
    return PurgeResult(deleted=deleted, done=deleted < batch_size)


# --- Model artifacts ----------------------------------------------------------------------

#: Stored artifacts kept besides the active version's: "the two before it".
ARTIFACTS_KEPT_BEFORE_ACTIVE = 2


def _artifacts_to_destroy(tenant: Tenant) -> list[Any]:
    """Stored artifacts older than the active version and the two before it (by version
    number). Versions newer than the active one (candidates not activated) are kept; with
    no active version, the newest three are kept."""
    from apps.modeling.models import ModelVersion

    stored = list(ModelVersion.objects.for_tenant(tenant)
                  .filter(artifact_destroyed_at__isnull=True).exclude(artifact_path="")
                  .order_by("-number"))
    active = next((v for v in stored if v.status == ModelVersion.Status.ACTIVE), None)
    if active is None:
        return stored[ARTIFACTS_KEPT_BEFORE_ACTIVE + 1:]
    before = [v for v in stored if v.number < active.number]
    return before[ARTIFACTS_KEPT_BEFORE_ACTIVE:]


def count_expired_artifacts(tenant: Tenant, cutoff: datetime) -> int:
    return len(_artifacts_to_destroy(tenant))


def purge_expired_artifacts(tenant: Tenant, cutoff: datetime, batch_size: int,
                            state: dict[str, Any]) -> PurgeResult:
    """Through the modeling app's ``destroy_artifact``: the file goes after commit, the
    version row (metrics, lineage) stays."""
    from apps.modeling.services.training import destroy_artifact

    doomed = _artifacts_to_destroy(tenant)
    for version in doomed[:batch_size]:
        destroy_artifact(tenant=tenant, version=version, why="retention")
    deleted = min(len(doomed), batch_size)
    return PurgeResult(deleted=deleted, done=len(doomed) <= batch_size)


# --- Registration -------------------------------------------------------------------------


def register_builtin_categories() -> None:
    register_retention_category(RetentionCategory(
        code=EVENTS, label="Interaction events",
        description="Events older than the period (by occurred_at) are deleted; models "
                    "trained on them are retrained. Default 365 days.",
        default_days=365, models=("events.Event",),
        count=count_expired_events, purge=purge_expired_events, order=10,
        after_purge=_events_forgotten,
    ))
    register_retention_category(RetentionCategory(
        code=INACTIVE_SUBJECTS, label="Inactive subjects",
        description="Subjects with no event and no consent change for the events period "
                    "are removed entirely (consent state, audit link, ...), except the "
                    "consent ledger, kept as proof under its own rule.",
        default_days=None, follows=EVENTS, unit="subjects",
        models=("consent.ConsentState", "consent.SubjectState", "audit.SubjectAuditToken",
                "privacy.PortalSession"),
        count=count_inactive_subjects, purge=purge_inactive_subjects, order=20,
        after_purge=_subjects_forgotten,
    ))
    register_retention_category(RetentionCategory(
        code=CONSENT_LEDGER, label="Consent ledger",
        description="A subject's consent records (proof of consent, GDPR Art. 7(1)) are "
                    "deleted 5 years after their last change. Default 1826 days.",
        default_days=5 * 365 + 1, models=("consent.ConsentRecord",),
        count=count_expired_ledger, purge=purge_expired_ledger, order=30,
    ))
    register_retention_category(RetentionCategory(
        code=EXPORTS, label="Data exports",
        description="Export files of access and portability requests are deleted when they "
                    "expire, 7 days after they are made (the privacy app's expiry; the row "
                    "stays with the request's record).",
        default_days=_export_ttl().days, settable=False, models=("privacy.DataExport",),
        count=count_expired_exports, purge=purge_expired_exports, order=40,
    ))
    register_retention_category(RetentionCategory(
        code=CLOSED_REQUESTS, label="Closed privacy requests",
        description="Records of privacy requests are deleted this long after they were "
                    "closed. Default 24 months (CCPA regulations §7101; 731 days).",
        default_days=731, models=("privacy.PrivacyRequest",),
        count=count_expired_requests, purge=purge_expired_requests, order=50,
    ))
    register_retention_category(RetentionCategory(
        code=TOMBSTONES, label="Erasure tombstones",
        description="The record that a subject was erased (a pseudonym), replayed after a "
                    "restore, is deleted this long after the erasure. Keep it at least as "
                    "long as your oldest backup. Default 3 years (1096 days).",
        default_days=3 * 365 + 1, models=("privacy.ErasureTombstone",),
        count=count_expired_tombstones, purge=purge_expired_tombstones, order=60,
    ))
    register_retention_category(RetentionCategory(
        code=MODEL_ARTIFACTS, label="Model artifacts",
        description="The active model version's artifact and the two before it are kept; "
                    "older artifacts are destroyed (version rows and metrics stay).",
        default_days=None, time_based=False, unit="artifacts",
        models=("modeling.ModelVersion",),
        count=count_expired_artifacts, purge=purge_expired_artifacts, order=70,
    ))
    register_retention_category(RetentionCategory(
        code=AUDIT_ENTRIES, label="Audit entries",
        description="Audit entries older than the period are pruned; the chain still "
                    "verifies from a checkpoint. Default 3 years (1096 days).",
        default_days=3 * 365 + 1, models=("audit.AuditEvent",),
        count=count_expired_audit_entries, purge=purge_expired_audit_entries, order=1000,
    ))


def _events_forgotten(tenant: Tenant, cutoff: datetime, deleted: int) -> None:
    """Events deleted by retention are data the models must forget (issue 7)."""
    from apps.retention.services import notify_models_of_deleted_data

    notify_models_of_deleted_data(tenant=tenant, cutoff=cutoff, deleted=deleted,
                                  category=EVENTS)


def _subjects_forgotten(tenant: Tenant, cutoff: datetime, deleted: int) -> None:
    """Removed subjects' factor rows go with the next retrain (they have no data left to
    train on); until then serving does not personalize for them (no consent state)."""
    from apps.retention.services import notify_models_of_deleted_data

    notify_models_of_deleted_data(tenant=tenant, cutoff=cutoff, deleted=deleted,
                                  category=INACTIVE_SUBJECTS)
