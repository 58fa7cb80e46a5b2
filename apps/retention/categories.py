"""The retention categories: one per store that owns its expiry (declared in the apps'
``subject_data`` modules: interaction events, the consent ledger, export files, closed
privacy requests, erasure tombstones) and the retention app's own rules that are not one
store (inactive subjects, model artifacts, webhook deliveries, audit entries).

Each category finds what is expired with one predicate on indexed columns and deletes it in
batches of at most ``batch_size`` rows per statement, each batch in its own short
transaction (the caller's), so a run never holds long locks and never blocks ingestion.
Counting uses the same predicate (a store's declared ``expired`` rows, less the rows of
restricted subjects when the store is frozen by a restriction), which is why a dry run
reports exactly what the run then deletes. The order matters and is part of that guarantee:

1. ``events`` first: every event older than the cutoff goes.
2. ``inactive_subjects`` uses the events period (DESIGN: subjects inactive for the event
   retention period are removed entirely). A subject is inactive when they have no event,
   no consent change, no portal visit and no privacy request since the cutoff (and no open
   request, and no restriction). They are found through the stores whose retention
   category is this one (consent state, audit token, portal sessions, ...) and erased
   through those stores' declarations, so the ledger proof stays and ages out under its
   own rule.
3. ``consent_ledger``: a subject's whole ledger goes 5 years after their last change.
4. ``exports`` (before the requests they belong to), ``closed_privacy_requests``,
   ``erasure_tombstones``, ``model_artifacts``, ``webhook_deliveries`` (an operational log
   with no subject data: finished deliveries only).
5. ``audit_entries`` last, through ``apps.audit.services.prune_audit_events`` (which keeps
   the hash chain verifiable); the receipts written by the earlier categories are then the
   newest entries, so every entry older than the cutoff can go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy

from apps.core.subject_data import (
    INACTIVE_SUBJECTS,
    Expiry,
    Frozen,
    ModelEffect,
    PurgeResult,
    SubjectDataStore,
    stores_governed_by,
    subject_data_stores,
)
from apps.tenants.models import Tenant

logger = logging.getLogger("retention.categories")

EVENTS = "events"
AUDIT_ENTRIES = "audit_entries"
MODEL_ARTIFACTS = "model_artifacts"
WEBHOOK_DELIVERIES = "webhook_deliveries"

#: Candidate subjects examined per batch (each inactive one costs a few small deletes).
SUBJECTS_PER_BATCH = 500

#: ``count(tenant, cutoff) -> int``: what a run with this cutoff would delete now.
Counter = Callable[[Tenant, datetime], int]
#: ``purge(tenant, cutoff, batch_size, state) -> PurgeResult``: delete one batch (at most
#: ``batch_size`` rows per statement) in the caller's transaction.
Purger = Callable[[Tenant, datetime, int, dict[str, Any]], PurgeResult]
#: ``after_purge(tenant, cutoff, deleted)``: called after commit when a category of a run has
#: finished with ``deleted > 0`` (e.g. tell the models that data is gone).
AfterPurge = Callable[[Tenant, datetime, int], None]


@dataclass(frozen=True)
class RetentionCategory:
    code: str                      # API and command name, e.g. "events"
    label: str                     # for people
    description: str               # what goes, measured from when, and why this default
    default_days: int | None       # None: the period is not set on this category (follows)
    count: Counter
    purge: Purger
    order: int = 100               # enforcement order within a run: lower first
    unit: str = "rows"             # what ``N`` in ``category: N`` counts
    follows: str | None = None     # the category whose period this one uses
    after_purge: AfterPurge | None = None
    #: False for a rule that is not a period (model artifacts: keep the newest versions);
    #: its ``cutoff`` is then the run's time.
    time_based: bool = True
    #: False when another app fixes the period (it cannot be set through retention yet).
    settable: bool = True


# --- A store's own category ---------------------------------------------------------------


def _expired_rows(store: SubjectDataStore, expiry: Expiry, tenant: Tenant,
                  cutoff: datetime) -> models.QuerySet:
    """The store's expired rows, less those of restricted subjects when a restriction
    freezes the store (GDPR Art. 18: kept, not deleted)."""
    rows = expiry.expired(tenant, cutoff)
    if isinstance(store.restrict, Frozen):
        from apps.consent.selectors import list_restricted_subjects

        restricted = list_restricted_subjects(tenant=tenant).filter(
            subject_key=OuterRef(store.subject_field))
        rows = rows.exclude(Exists(restricted))
    return rows


def _store_category(store: SubjectDataStore, expiry: Expiry) -> RetentionCategory:
    def count(tenant: Tenant, cutoff: datetime) -> int:
        return _expired_rows(store, expiry, tenant, cutoff).count()

    def purge(tenant: Tenant, cutoff: datetime, batch_size: int,
              state: dict[str, Any]) -> PurgeResult:
        """One ``DELETE ... WHERE id IN (SELECT id ... LIMIT batch_size)``: row locks on at
        most ``batch_size`` old rows, none on the rows being inserted. ``rows`` counts what
        went with them (a request's challenges and jobs)."""
        if expiry.purge is not None:
            return expiry.purge(tenant, cutoff, batch_size, state)
        expired = _expired_rows(store, expiry, tenant, cutoff)
        model = expired.model
        batch = expired.order_by().values("pk")[:batch_size]
        rows, per_model = model.objects.for_tenant(tenant).filter(pk__in=batch).delete()
        deleted = per_model.get(model._meta.label, 0)
        return PurgeResult(deleted=deleted, done=deleted < batch_size, rows=rows)

    code = store.retention.category
    return RetentionCategory(
        code=code, label=expiry.label, description=expiry.description,
        default_days=expiry.default_days, count=count, purge=purge, order=expiry.order,
        settable=expiry.settable,
        after_purge=(_data_forgotten(code)
                     if store.model_effect == ModelEffect.TRAINING_DATA else None),
    )


def _data_forgotten(code: str) -> AfterPurge:
    """Rows the models are trained on, deleted by retention: data they must forget."""

    def after_purge(tenant: Tenant, cutoff: datetime, deleted: int) -> None:
        from apps.retention.services import notify_models_of_deleted_data

        notify_models_of_deleted_data(tenant=tenant, cutoff=cutoff, deleted=deleted,
                                      category=code)

    return after_purge


# --- Inactive subjects --------------------------------------------------------------------


def _activity(tenant: Tenant, cutoff: datetime) -> list[models.QuerySet]:
    """Querysets of what holds a subject since ``cutoff``, filtered by subject_key later:
    an event, a consent change, a privacy-portal visit, a privacy request received since
    the cutoff or still open (a subject is never removed in the middle of a request), and,
    when the stores this rule removes are frozen by a restriction, the restriction itself
    (GDPR Art. 18: kept, not deleted)."""
    from apps.consent.selectors import list_consent_changes, list_restricted_subjects
    from apps.events.selectors import list_events
    from apps.privacy.selectors import list_privacy_activity

    held = [list_restricted_subjects(tenant=tenant)] if any(
        isinstance(s.restrict, Frozen) for s in stores_governed_by(INACTIVE_SUBJECTS)) else []
    return [
        *held,
        list_events(tenant=tenant, since=cutoff),
        list_consent_changes(tenant=tenant, since=cutoff),
        *list_privacy_activity(tenant=tenant, since=cutoff),
    ]


def _presence_models() -> list[type[models.Model]]:
    """Where an inactive subject can still be found: the tables of the stores this rule
    governs (keyed by ``subject_key``)."""
    found = []
    for store in stores_governed_by(INACTIVE_SUBJECTS):
        for label in store.models:
            model = apps.get_model(label)
            if any(f.name == "subject_key" for f in model._meta.get_fields()):
                found.append(model)
    return found


def _erasers() -> list[SubjectDataStore]:
    """The stores this rule governs, erased through their declarations (never the
    ledger: its proof is kept by the ledger rule)."""
    return [s for s in stores_governed_by(INACTIVE_SUBJECTS) if s.models]


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
    subject key) and erase the inactive ones through their stores' declarations."""
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
            for store in erasers:
                erased_rows += store.erase(tenant, subject_key)
        return PurgeResult(deleted=len(inactive), done=False, rows=erased_rows,
                           state={"model": index, "after": keys[-1]})
    return PurgeResult(deleted=0, done=True, rows=0, state={"model": index, "after": ""})


# --- Audit entries ------------------------------------------------------------------------


def count_expired_audit_entries(tenant: Tenant, cutoff: datetime) -> int:
    from apps.audit.selectors import list_audit_events_before

    return list_audit_events_before(tenant=tenant, cutoff=cutoff).count()


def purge_expired_audit_entries(tenant: Tenant, cutoff: datetime, batch_size: int,
                                state: dict[str, Any]) -> PurgeResult:
    """Prune about ``batch_size`` of the oldest entries, keeping the chain verifiable."""
    from apps.audit.services import prune_audit_events_batch

    deleted, done = prune_audit_events_batch(tenant=tenant, cutoff=cutoff,
                                             batch_size=batch_size)
    return PurgeResult(deleted=deleted, done=done)


# --- Model artifacts ----------------------------------------------------------------------

def count_expired_artifacts(tenant: Tenant, cutoff: datetime) -> int:
    from apps.modeling.selectors import list_expired_artifacts

    return len(list_expired_artifacts(tenant=tenant))


def purge_expired_artifacts(tenant: Tenant, cutoff: datetime, batch_size: int,
                            state: dict[str, Any]) -> PurgeResult:
    """Through the modeling app's ``destroy_artifact``: the file goes after commit, the
    version row (metrics, lineage) stays."""
    from apps.modeling.selectors import list_expired_artifacts
    from apps.modeling.services import destroy_artifact

    doomed = list_expired_artifacts(tenant=tenant)
    for version in doomed[:batch_size]:
        destroy_artifact(tenant=tenant, version=version, why="retention")
    deleted = min(len(doomed), batch_size)
    return PurgeResult(deleted=deleted, done=len(doomed) <= batch_size)


# --- Webhook deliveries -------------------------------------------------------------------
# An operational log, not subject data (payloads carry ids and statuses only), so not a
# store's own category: a rule of the retention app, like the audit entries.


def count_expired_webhook_deliveries(tenant: Tenant, cutoff: datetime) -> int:
    from apps.webhooks.selectors import list_finished_webhook_deliveries_before

    return list_finished_webhook_deliveries_before(tenant=tenant, cutoff=cutoff).count()


def purge_expired_webhook_deliveries(tenant: Tenant, cutoff: datetime, batch_size: int,
                                     state: dict[str, Any]) -> PurgeResult:
    from apps.webhooks.services import prune_webhook_deliveries_batch

    deleted = prune_webhook_deliveries_batch(tenant=tenant, cutoff=cutoff,
                                             batch_size=batch_size)
    return PurgeResult(deleted=deleted, done=deleted < batch_size)


# --- Every category ------------------------------------------------------------------------


def _own_categories() -> list[RetentionCategory]:
    """The rules that are not one store's."""
    return [
        RetentionCategory(
            code=INACTIVE_SUBJECTS, label=gettext_lazy("Inactive subjects"),
            description=gettext_lazy(
                "Subjects with no event and no consent change for the events period are "
                "removed entirely (consent state, audit link, ...), except the consent "
                "ledger, kept as proof under its own rule."),
            default_days=None, follows=EVENTS, unit="subjects",
            count=count_inactive_subjects, purge=purge_inactive_subjects, order=20,
            after_purge=_data_forgotten(INACTIVE_SUBJECTS),
        ),
        RetentionCategory(
            code=MODEL_ARTIFACTS, label=gettext_lazy("Model artifacts"),
            description=gettext_lazy(
                "The active model version's artifact and the two before it are kept; "
                "older artifacts are destroyed (version rows and metrics stay)."),
            default_days=None, time_based=False, unit="artifacts",
            count=count_expired_artifacts, purge=purge_expired_artifacts, order=70,
        ),
        RetentionCategory(
            code=WEBHOOK_DELIVERIES, label=gettext_lazy("Webhook deliveries"),
            description=gettext_lazy(
                "The webhook delivery log (event type, endpoint, status, ids): finished "
                "deliveries older than the period are deleted. Default 30 days."),
            default_days=30,
            count=count_expired_webhook_deliveries, purge=purge_expired_webhook_deliveries,
            order=900,
        ),
        RetentionCategory(
            code=AUDIT_ENTRIES, label=gettext_lazy("Audit entries"),
            description=gettext_lazy(
                "Audit entries older than the period are pruned; the chain still verifies "
                "from a checkpoint. Default 3 years (1096 days)."),
            default_days=3 * 365 + 1,
            count=count_expired_audit_entries, purge=purge_expired_audit_entries, order=1000,
        ),
    ]


def retention_categories() -> list[RetentionCategory]:
    """Every category, in enforcement order: the stores' own and the retention app's."""
    categories = _own_categories()
    for store in subject_data_stores():
        expiry = store.retention.expiry
        if isinstance(expiry, Expiry):
            categories.append(_store_category(store, expiry))
    return sorted(categories, key=lambda c: (c.order, c.code))


def get_retention_category(code: str) -> RetentionCategory | None:
    return next((c for c in retention_categories() if c.code == code), None)


def undefined_retention_categories() -> list[str]:
    """Stores whose retention category is neither theirs nor the retention app's, and
    categories that two stores claim (GDPR Art. 5(1)(e): every store has one period)."""
    codes = [c.code for c in retention_categories()]
    problems = [f"{s.name}: no category '{s.retention.category}'"
                for s in subject_data_stores() if s.retention.category not in codes]
    problems += [f"category '{code}' defined twice" for code in sorted(set(codes))
                 if codes.count(code) > 1]
    return problems
