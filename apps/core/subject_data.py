"""Subject data, declared once per store (DESIGN "Declarations": subject data).

A *store* is one place that holds data about a data subject: a table (events, the consent
ledger, ...) or something outside the database (model artifacts, export files). Each app
declares its stores in its own ``apps/<app>/subject_data.py`` by calling :func:`declare`;
the modules are discovered once, at start-up. A :class:`SubjectDataStore` names, for its
store, what every right does:

* ``export`` (GDPR Art. 15/20) and ``erase`` (Art. 17), or :func:`kept_as_proof` when the
  law requires the rows to outlive an erasure;
* ``restrict`` (Art. 18): :func:`frozen` (kept, excluded from processing and from retention
  deletion) or :func:`not_applicable`;
* ``rectify`` (Art. 16): a function, or :func:`not_applicable`;
* ``retention`` (Art. 5(1)(e)): the retention category, its plain-words text, and, for a store
  that owns its category, the expired rows from which both the dry-run count and the purge
  are derived;
* ``model_effect``: whether the active model is trained on these rows.

Privacy requests, retention and the portal's "my data" only read this registry. A right
cannot be left out (no field has a default), and a test walks every right of every
declaration and every model with a subject field. This module imports nothing from the
other apps (it is the bottom layer).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.apps.registry import Apps
from django.db import models
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext, ngettext

#: The field that holds the pseudonymous subject key, unless a store names another.
SUBJECT_FIELD = "subject_key"

#: A tenant (``apps.tenants.models.Tenant``); not imported here: core is the bottom layer.
Tenant = Any

Exporter = Callable[[Tenant, str], Any]
Eraser = Callable[[Tenant, str], int]


@dataclass(frozen=True)
class Correction:
    """A rectification request's details (GDPR Art. 16 / CCPA right to correct)."""

    changes: Mapping[str, Any]  # e.g. {"consents": {...}, "level": ..., "delete_events": [...]}
    source: str                 # the channel, as the consent ledger records it
    actor: Any = None


#: ``rectify(tenant, subject_key, correction) -> outcome``: apply the parts of the correction
#: that concern this store; ``{}`` when none do.
Rectifier = Callable[[Tenant, str, Correction], dict[str, Any]]
#: ``verify(tenant, subject_key) -> places still holding the subject`` (non-table stores).
Verifier = Callable[[Tenant, str], list[str]]
#: ``describe(tenant, subject_key) -> mapping`` merged into the erasure receipt, computed
#: before anything is erased (e.g. the model versions the subject was part of).
Describer = Callable[[Tenant, str], dict[str, Any]]
#: ``held(tenant, subject_key) -> entries``: what a store outside the tables holds about the
#: subject, one plain-words entry each (e.g. "model v2"), for the portal's "my data". The
#: store's ``export`` must read the same function, so that the two never disagree.
Holdings = Callable[[Tenant, str], list[str]]
#: ``period(category_code) -> the tenant's period`` (``None``: no fixed period).
PeriodOf = Callable[[str], timedelta | None]
#: ``text(tenant, period) -> the rule in plain words`` for exports and "my data", in the
#: active language (``gettext`` with named placeholders, called when the text is shown).
RetentionText = Callable[[Tenant, PeriodOf], str]
#: ``expired(tenant, cutoff) -> rows`` of this store past the cutoff.
ExpiredRows = Callable[[Tenant, datetime], models.QuerySet]


# --- Why a right does not apply (named, never left out) ----------------------------------


@dataclass(frozen=True)
class NotApplicable:
    """A right that does not apply to a store, and why (shown in the records of
    processing)."""

    reason: str


@dataclass(frozen=True)
class KeptAsProof:
    """Rows the law requires to outlive an erasure (``law``: the provision). As an eraser
    it removes nothing and reports 0, so the erasure receipt still lists the category."""

    law: str

    def __call__(self, tenant: Tenant, subject_key: str) -> int:
        return 0


@dataclass(frozen=True)
class Frozen:
    """How a restricted subject's rows of this store are frozen (GDPR Art. 18): kept,
    excluded from processing (``how``, in plain words) and from retention deletion (the
    retention app skips restricted subjects in this store's expired rows)."""

    how: str


def not_applicable(reason: str) -> NotApplicable:
    return NotApplicable(reason)


def kept_as_proof(law: str) -> KeptAsProof:
    return KeptAsProof(law)


def frozen(how: str) -> Frozen:
    return Frozen(how)


#: For a table store: the erasure verifier's scan of every table finds what is left.
COVERED_BY_TABLE_SCAN = NotApplicable("the erasure check scans every table")


class ModelEffect(enum.StrEnum):
    """Whether changing a store's rows must reach the active model."""

    NONE = "none"                    # the models are not trained on these rows
    TRAINING_DATA = "training_data"  # trained on: deleting rows asks for a retrain
    IS_MODEL = "is_model"            # the store is the model itself (artifacts)


# --- Retention ----------------------------------------------------------------------------


@dataclass
class PurgeResult:
    """What one retention batch did. ``state`` is the category's own cursor, stored in the
    run's checkpoint in the batch's transaction; ``done`` ends the category for this run."""

    deleted: int
    done: bool
    state: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None  # rows behind ``deleted`` when the unit is not rows (subjects)


#: ``purge(tenant, cutoff, batch_size, state) -> PurgeResult``: delete one batch.
Purger = Callable[[Tenant, datetime, int, dict[str, Any]], PurgeResult]


@dataclass(frozen=True)
class Expiry:
    """A retention category that a store owns: its rows expire by age. The retention app
    counts and purges exactly ``expired`` (minus restricted subjects when the store is
    :class:`Frozen`), in batches of at most ``batch_size`` rows per statement."""

    label: str           # for people (admin, API)
    description: str     # what goes, measured from when, and why this default
    default_days: int
    order: int           # enforcement order within a run: lower first
    expired: ExpiredRows
    #: What deleting means when it is not deleting the rows (export files: the files go,
    #: the rows stay with the request's record). It must act on exactly ``expired``.
    purge: Purger | None = None
    #: False when the app that holds the data fixes the period.
    settable: bool = True


@dataclass(frozen=True)
class RetentionRule:
    """How long a store's data is kept."""

    category: str        # the retention category whose period governs these rows
    text: RetentionText  # for exports and the portal's "my data"
    #: :class:`Expiry` when the store owns ``category``; :class:`NotApplicable` when a rule
    #: of the retention app removes the rows (inactive subjects, model artifacts by count).
    expiry: Expiry | NotApplicable
    #: Whether the subject is shown the period in days, counted from a row's creation.
    dated: bool


@dataclass(frozen=True)
class RetentionNotice:
    """One store's rule for one tenant, in plain words (``days``: the period, when it is
    shown as one)."""

    text: str
    days: int | None


# --- The declaration ----------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectDataStore:
    """One store of subject data and what every right does to it. No right has a default:
    a declaration that leaves one out does not construct."""

    name: str                  # unique, e.g. "events.event"; a checkpoint and export name
    #: What the subject sees in exports and receipts: English, marked ``gettext_noop``;
    #: shown through :func:`category_name`.
    category: str
    models: tuple[str, ...]    # model labels of a table store; () for files, artifacts
    order: int                 # erasure (and export) order: lower first
    export: Exporter
    erase: Eraser | KeptAsProof
    restrict: Frozen | NotApplicable
    rectify: Rectifier | NotApplicable
    retention: RetentionRule
    model_effect: ModelEffect
    subject_field: str = SUBJECT_FIELD
    #: Where the erasure check looks for what a store outside the tables still holds.
    verify_erased: Verifier | NotApplicable = COVERED_BY_TABLE_SCAN
    describe_erasure: Describer | None = None
    #: For a store outside the tables: its entries in "my data" (``None``: shown uncounted).
    held: Holdings | None = None

    def __post_init__(self) -> None:
        problems = undefined_rights(self)
        if problems:
            raise TypeError(f"subject data store '{self.name}': {'; '.join(problems)}")

    @property
    def kept_as_proof(self) -> bool:
        return isinstance(self.erase, KeptAsProof)


#: Every right a declaration must define, with what a definition may be.
RIGHTS: dict[str, tuple[type, ...]] = {
    "export": (),  # a function
    "erase": (KeptAsProof,),
    "restrict": (Frozen, NotApplicable),
    "rectify": (NotApplicable,),
    "retention": (RetentionRule,),
    "model_effect": (ModelEffect,),
}
_VALUES_ONLY = frozenset({"restrict", "retention", "model_effect"})


def undefined_rights(store: SubjectDataStore) -> list[str]:
    """What ``store`` leaves undefined or defines with the wrong kind of value."""
    problems = []
    for right, allowed in RIGHTS.items():
        value = getattr(store, right, None)
        if isinstance(value, allowed):
            continue
        if right not in _VALUES_ONLY and callable(value):
            continue
        problems.append(f"{right} is undefined ({value!r})")
    rule = store.retention if isinstance(store.retention, RetentionRule) else None
    if rule is not None:
        if not callable(rule.text):
            problems.append("retention text is undefined")
        expiry = rule.expiry
        if not isinstance(expiry, Expiry | NotApplicable):
            problems.append("retention expiry is undefined")
        elif isinstance(expiry, Expiry) and not callable(expiry.expired):
            problems.append("retention expired rows are undefined")
    if not store.models and isinstance(store.verify_erased, NotApplicable) and (
            store.verify_erased is COVERED_BY_TABLE_SCAN):
        problems.append("a store outside the tables needs verify_erased (or a reason)")
    return problems


# --- Parts that several declarations share -------------------------------------------------

#: The retention app's rule for subjects without activity for the events period: it removes
#: the subject's rows of every store it governs (``apps.retention.categories``).
INACTIVE_SUBJECTS = "inactive_subjects"


def subject_rows(model: Any, fields: tuple[str, ...]) -> tuple[Exporter, Eraser]:
    """``export`` and ``erase`` of a tenant-owned table whose rows are the subject's by
    ``subject_key``: their ``fields`` in the order they were written, and their deletion."""

    def export(tenant: Tenant, subject_key: str) -> list[dict[str, Any]]:
        return list(model.objects.for_tenant(tenant).filter(subject_key=subject_key)
                    .order_by("pk").values(*fields))

    def erase(tenant: Tenant, subject_key: str) -> int:
        deleted, _ = model.objects.for_tenant(tenant).filter(subject_key=subject_key).delete()
        return deleted

    return export, erase


def removed_with_inactive_subjects(
    text: RetentionText, *, how: str = "Removed with inactive subjects.",
) -> RetentionRule:
    """The retention rule of a store kept while its subject is active: the retention app's
    :data:`INACTIVE_SUBJECTS` rule removes it (``how``: and anything else that does), and the
    subject is shown no period in days."""
    return RetentionRule(category=INACTIVE_SUBJECTS, text=text, expiry=NotApplicable(how),
                         dated=False)


# --- The registry -------------------------------------------------------------------------

_stores: dict[str, SubjectDataStore] = {}
_discovered = False


def declare(*stores: SubjectDataStore) -> None:
    """Add stores (from an app's ``subject_data`` module). Declaring the same store again
    is a no-op; two different stores under one name are an error."""
    for store in stores:
        existing = _stores.get(store.name)
        if existing is not None and existing != store:
            raise ValueError(f"subject data store '{store.name}' declared twice")
        _stores[store.name] = store


def withdraw(name: str) -> None:
    """Remove a declared store (tests that declare a throw-away one)."""
    _stores.pop(name, None)


def discover() -> None:
    """Import every installed app's ``subject_data`` module, once (``CoreConfig.ready``;
    every read calls it too, so a script that reads first also finds them)."""
    global _discovered
    if not _discovered:
        autodiscover_modules("subject_data")
        _discovered = True


def subject_data_stores() -> list[SubjectDataStore]:
    """Every declared store, in erasure order."""
    discover()
    return sorted(_stores.values(), key=lambda s: (s.order, s.name))


def get_subject_data_store(name: str) -> SubjectDataStore | None:
    discover()
    return _stores.get(name)


# --- Coverage: every model with a subject field is declared --------------------------------


def subject_field_of(model: type[models.Model]) -> str:
    """The field holding the subject key in ``model`` (``subject_key`` unless declared)."""
    for store in subject_data_stores():
        if model._meta.label in store.models:
            return store.subject_field
    return SUBJECT_FIELD


def subject_bearing_models(registry: Apps = apps) -> list[type[models.Model]]:
    """Models with a subject field: ``subject_key``, or the field a store names."""
    found = []
    for model in registry.get_models():
        field = subject_field_of(model)
        if any(f.name == field for f in model._meta.get_fields()):
            found.append(model)
    return found


def undeclared_subject_models(registry: Apps = apps) -> list[str]:
    """Subject-bearing models that no store declares (privacy invariant 3)."""
    declared = {label for store in subject_data_stores() for label in store.models}
    return sorted(
        m._meta.label for m in subject_bearing_models(registry) if m._meta.label not in declared
    )


def stores_governed_by(category: str) -> list[SubjectDataStore]:
    """The stores whose rows ``category``'s period governs."""
    return [s for s in subject_data_stores() if s.retention.category == category]


# --- Retention in plain words -------------------------------------------------------------

PeriodSource = Callable[[Tenant, str], timedelta | None]


def _default_period(tenant: Tenant, category: str) -> timedelta | None:
    for store in stores_governed_by(category):
        if isinstance(store.retention.expiry, Expiry):
            return timedelta(days=store.retention.expiry.default_days)
    return None


_period_source: PeriodSource = _default_period


def use_retention_periods(source: PeriodSource) -> None:
    """Where a tenant's periods come from: the retention app's policies (its ``ready``).
    Until then, the declared defaults."""
    global _period_source
    _period_source = source


def retention_period(tenant: Tenant, category: str) -> timedelta | None:
    """The tenant's period for ``category`` (``None``: not time-based), from the retention
    app's policies once it is ready; lets a lower app read it without importing retention."""
    return _period_source(tenant, category)


def describe_period(period: timedelta | None) -> str:
    """``period`` in words, in the active language (a retention text calls it when it is
    rendered, so a subject reads it in the portal's language)."""
    if period is None:
        return gettext("no fixed period")
    hours = int(period.total_seconds() // 3600)
    if hours % 24:
        return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    days = hours // 24
    return ngettext("%(count)d day", "%(count)d days", days) % {"count": days}


def category_name(store: SubjectDataStore | str) -> str:
    """A store's category (or a category as a receipt recorded it) in the active language.
    ``category`` is declared in English, marked with ``gettext_noop`` so that the catalogue
    of the declaring app holds it, and stays English wherever it is stored (receipts,
    exports, audit entries); it is translated only when shown."""
    category = store.category if isinstance(store, SubjectDataStore) else store
    return gettext(category) if category else category


def retention_notice(store: SubjectDataStore, tenant: Tenant) -> RetentionNotice:
    """``store``'s retention rule for ``tenant``, from the tenant's actual periods."""
    rule = store.retention

    def period(category: str) -> timedelta | None:
        return _period_source(tenant, category)

    days = None
    if rule.dated:
        own = period(rule.category)
        days = own.days if own is not None and not own.seconds else None
    return RetentionNotice(rule.text(tenant, period), days)
