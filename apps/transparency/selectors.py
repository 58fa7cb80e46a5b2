"""Reads of the transparency app (STYLE S4): what the public "how recommendations work"
page shows, and the records of processing (GDPR Art. 30). Both are built on every call
from the live configuration (event schema, active model version, retention policies,
purposes, subject-data declarations, sub-processors): nothing is stored or cached, so
neither can go stale after a change."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.core.subject_data import (
    Frozen,
    KeptAsProof,
    NotApplicable,
    retention_notice,
    subject_data_stores,
)
from apps.tenants.models import Tenant
from apps.transparency.models import SubProcessor

# --- Personalization levels ---------------------------------------------------------------

#: What each personalization level (``apps.consent`` ``Level``) stores and uses, in plain
#: words. ``tests/transparency`` fails when a level has no entry here.
LEVEL_DESCRIPTIONS: dict[str, dict[str, Promise]] = {
    "full": {
        "name": _("Full"),
        "stores": _("Your interactions on the site (the item, the kind of interaction, its "
                    "time), under a pseudonym, for as long as the retention periods below "
                    "allow."),
        "uses": _("Your stored history, to recommend items you may like; it is also used to "
                  "train the recommendation model while your consent holds."),
    },
    "session": {
        "name": _("Session only"),
        "stores": _("Nothing about your interactions: only your choice itself is kept, as "
                    "proof of it."),
        "uses": _("Only the items the site sends with the request (what you look at now); "
                  "the model forgets you at once when you choose this level."),
    },
    "off": {
        "name": _("Off"),
        "stores": _("Nothing about your interactions: only your choice itself is kept, as "
                    "proof of it."),
        "uses": _("Nothing about you: you get the same non-personalized list of popular "
                  "items as everyone (see differential privacy below)."),
    },
}


@dataclass(frozen=True)
class Level:
    code: str
    name: Any
    stores: Any
    uses: Any


def list_levels() -> list[Level]:
    """Every personalization level the consent app defines, in its order, with what it
    stores and uses (a level without a description is a ``KeyError``: tested)."""
    from apps.consent.selectors import Level as ConsentLevel

    return [Level(code, **LEVEL_DESCRIPTIONS[code]) for code in ConsentLevel.values]


# --- The public page ----------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """One event type of the tenant's schema: how much one event counts in training."""

    code: str
    weight: float | None      # None: the event's own value is its weight (ratings)
    purpose: str              # the purpose key the type serves
    purpose_name: str


@dataclass(frozen=True)
class Algorithm:
    name: str
    label: str
    logic: str
    version: int
    trained_at: datetime
    activated_at: datetime | None


@dataclass(frozen=True)
class RetentionEntry:
    code: str
    label: str
    description: str
    days: int | None
    hours: int | None
    follows: str | None       # label of the category whose period applies
    time_based: bool


@dataclass(frozen=True)
class StoreRetention:
    name: str      # the store's declared name (stable)
    category: str  # declared in English; shown through ``category_name``
    text: str      # in the active language (the store's retention text)


@dataclass(frozen=True)
class DifferentialPrivacy:
    epsilon: float
    budget_total: float
    window_days: int
    contribution_bound: int
    min_support: int


@dataclass(frozen=True)
class TransparencyReport:
    tenant: Tenant
    signals: list[Signal]
    weighting: str
    max_cell_weight: float
    max_subject_weight: float
    algorithm: Algorithm | None
    retention: list[RetentionEntry]
    stores: list[StoreRetention]
    levels: list[Level]
    dp: DifferentialPrivacy


def get_active_tenant(*, slug: str) -> Tenant | None:
    """The active tenant with this slug (``None``: unknown or inactive, a 404)."""
    return Tenant.objects.filter(slug=slug, is_active=True).first()


def _signals(tenant: Tenant) -> list[Signal]:
    from apps.consent.selectors import list_purposes
    from apps.events.selectors import get_event_schema

    names = {p.key: p.name for p in list_purposes(tenant=tenant)}
    schema = get_event_schema(tenant=tenant)
    return [Signal(code=code, weight=None if spec.weight_from_value else spec.weight,
                   purpose=spec.purpose, purpose_name=names.get(spec.purpose, spec.purpose))
            for code, spec in sorted(schema.types.items())]


def _algorithm(tenant: Tenant) -> Algorithm | None:
    """The algorithm that serves now (``serving_algorithm``: the recommender of the active
    version's artifact, the one answering requests) and when its version was trained."""
    from apps.modeling.selectors import get_active_model_version
    from apps.modeling.services import serving_algorithm

    served = serving_algorithm(tenant=tenant)
    if served is None:
        return None
    try:
        version = get_active_model_version(tenant=tenant)
    except ObjectDoesNotExist:  # retired since the artifact was loaded
        return None
    return Algorithm(name=served.name, label=served.label, logic=served.logic,
                     version=served.model_version, trained_at=version.created_at,
                     activated_at=version.activated_at)


def list_retention_entries(*, tenant: Tenant) -> list[RetentionEntry]:
    """Every retention category with the tenant's period (as the admin shows it)."""
    from apps.retention.selectors import list_retention_policies

    views = list_retention_policies(tenant=tenant)
    labels = {v.code: v.category.label for v in views}
    entries = []
    for view in views:
        category = view.category
        days, hours = view.days, view.hours
        if category.follows is not None and view.period is not None:
            days, hours = view.period.days, None
        entries.append(RetentionEntry(
            code=category.code, label=category.label, description=category.description,
            days=days, hours=hours,
            follows=labels.get(category.follows) if category.follows else None,
            time_based=category.time_based))
    return entries


def _stores(tenant: Tenant) -> list[StoreRetention]:
    return [StoreRetention(name=store.name, category=store.category,
                           text=retention_notice(store, tenant).text)
            for store in subject_data_stores()]


def get_transparency_report(*, tenant: Tenant) -> TransparencyReport:
    """Everything the public page says, read now from the live configuration."""
    from apps.modeling.selectors import get_modeling_settings

    settings = get_modeling_settings(tenant=tenant)
    return TransparencyReport(
        tenant=tenant,
        signals=_signals(tenant),
        weighting=settings.weighting,
        max_cell_weight=settings.max_cell_weight,
        max_subject_weight=settings.max_subject_weight,
        algorithm=_algorithm(tenant),
        retention=list_retention_entries(tenant=tenant),
        stores=_stores(tenant),
        levels=list_levels(),
        dp=DifferentialPrivacy(
            epsilon=settings.dp_epsilon, budget_total=settings.dp_budget_total,
            window_days=settings.dp_budget_window_days,
            contribution_bound=settings.dp_contribution_bound,
            min_support=settings.min_support),
    )


# --- Records of processing (GDPR Art. 30) --------------------------------------------------


def list_sub_processors(*, tenant: Tenant) -> QuerySet[SubProcessor]:
    return SubProcessor.objects.for_tenant(tenant).order_by("name", "pk")


#: The categories of data subjects (Art. 30(1)(c)). Every declared store is keyed by a
#: pseudonymous subject key of the controller's end users; privacy requesters' contact
#: details are kept encrypted only while their request needs them.
SUBJECT_CATEGORIES = (
    "End users of the controller's websites and apps, under a pseudonym (HMAC-SHA256 of "
    "the controller's own identifier); no name, email address, IP address or user agent "
    "is stored with their data.",
    "People who make a privacy request (access, erasure, ...): their contact address, "
    "encrypted, only while the request needs it, then wiped.",
)

RECIPIENTS = (
    "The controller, through its API keys (recommendations, consent state, exports it "
    "requests) and its staff members in the administration site, scoped to the tenant.",
    "The data subjects themselves, through the privacy portal (their own data only).",
    "Discreet, as the controller's processor, which hosts and runs the processing.",
    "The sub-processors listed below, for the purposes stated there.",
)


def security_measures() -> list[str]:
    """Art. 32 measures, as the code implements them (README "Security", "Pseudonymization",
    "Audit trail"); the row-level security entry only on PostgreSQL, where it exists."""
    measures = [
        "Pseudonymization at the edge: a subject's identifier is replaced on arrival by "
        "HMAC-SHA256 under the tenant's own 256-bit secret; the raw identifier is never "
        "stored or logged. Each tenant's secret is stored encrypted (Fernet) under a master "
        "key kept outside the database.",
        "Tenant isolation: every query of tenant data is scoped to one tenant in the "
        "application and fails closed outside a tenant scope; API keys and staff members "
        "reach their own tenant only.",
        "Data minimization: event properties outside the tenant's allow-list are dropped on "
        "arrival; no IP address or user agent is stored with subject data.",
        "Consent is checked at ingestion, at training and at serving; a restriction freezes "
        "a subject's data.",
        "Tamper-evident audit trail: operations on subject data and configuration changes "
        "are recorded in a per-tenant hash chain (HMAC-SHA256 under a key derived from the "
        "master key), whose signed heads are exported outside the database.",
        "API keys are stored only as SHA-256 hashes, carry scopes and expiry, and are "
        "rate-limited.",
        "Differential privacy for non-personalized popular lists (OpenDP, bounded "
        "contribution per subject, a yearly privacy budget per tenant).",
        "Retention periods enforced daily; erasure verified by searching every table, model "
        "artifact and export file for the subject.",
        "Model artifacts hold pseudonymous keys only, are checksummed and loaded without "
        "pickle.",
        "Encryption in transit: TLS is expected in deployment; the production settings "
        "redirect HTTP to HTTPS, send HSTS and mark cookies secure.",
        "A Content-Security-Policy on every page; request bodies are size-limited.",
    ]
    if connection.vendor == "postgresql":
        measures.insert(2, "Row-level security in PostgreSQL, enabled and forced on every "
                           "tenant-owned table, as a second line behind the application's "
                           "tenant scoping.")
    return measures


def _right(value: Any) -> str:
    if isinstance(value, KeptAsProof):
        return f"kept as proof ({value.law})"
    if isinstance(value, Frozen):
        return f"frozen: {value.how}"
    if isinstance(value, NotApplicable):
        return f"not applicable: {value.reason}"
    return "supported"


def _period(entry: RetentionEntry | None) -> dict[str, Any]:
    if entry is None:
        return {"retention_days": None, "retention_hours": None}
    return {"retention_days": entry.days, "retention_hours": entry.hours}


def get_records_of_processing(*, tenant: Tenant) -> dict[str, Any]:
    """The tenant's records of processing activities (GDPR Art. 30(1)), from the purposes,
    the subject-data declarations (every store), the retention policies and the
    sub-processor registry. Reads only."""
    from apps.consent.selectors import list_purposes

    retention = list_retention_entries(tenant=tenant)
    by_code = {e.code: e for e in retention}
    categories = []
    for store in subject_data_stores():
        code = store.retention.category
        entry = by_code.get(code)
        categories.append({
            "name": store.name,
            "category": store.category,
            "retention_category": code,
            **_period(entry),
            "retention": retention_notice(store, tenant).text,
            "erasure": _right(store.erase),
            "restriction": _right(store.restrict),
            "rectification": _right(store.rectify),
            "used_for_training": store.model_effect.value != "none",
        })
    sub_processors = [{
        "name": s.name, "purpose": s.purpose, "location": s.location,
        "transfer_mechanism": s.transfer_mechanism,
        "transfer_mechanism_label": str(s.get_transfer_mechanism_display()),
        "safeguards": s.safeguards,
    } for s in list_sub_processors(tenant=tenant)]
    return {
        "generated_at": timezone.now().isoformat(),
        "controller": {"name": tenant.name, "slug": tenant.slug,
                       "contact_email": tenant.contact_email or None},
        "processor": "Discreet (the personalization platform), on the controller's "
                     "documented instructions.",
        "purposes": [{
            "key": p.key, "name": p.name, "description": p.description,
            "legal_basis": p.legal_basis,
            "legal_basis_label": str(p.get_legal_basis_display()),
            "sale_or_sharing": p.is_sale_or_sharing,
            "uses_sensitive_data": p.uses_sensitive_data,
            "aggregate_only": p.aggregate_only,
        } for p in list_purposes(tenant=tenant)],
        "categories_of_subjects": list(SUBJECT_CATEGORIES),
        "categories_of_data": categories,
        "retention_periods": [{
            "category": e.code, "label": str(e.label), "description": str(e.description),
            "days": e.days, "hours": e.hours, "time_based": e.time_based,
        } for e in retention],
        "recipients": list(RECIPIENTS),
        "sub_processors": sub_processors,
        "transfers": [{"sub_processor": s["name"], "location": s["location"],
                       "mechanism": s["transfer_mechanism_label"],
                       "safeguards": s["safeguards"]}
                      for s in sub_processors if s["transfer_mechanism"] != "none"],
        "security_measures": security_measures(),
    }


CSV_COLUMNS = ("section", "name", "field", "value")

#: Sections whose entries are objects, and the field naming each entry.
_ENTRY_NAME = {
    "purposes": "key", "categories_of_data": "name", "retention_periods": "category",
    "sub_processors": "name", "transfers": "sub_processor",
}


def records_to_csv(records: dict[str, Any]) -> str:
    """The records as one CSV table, one value per row: ``section, name, field, value``
    (``name``: the entry, e.g. a purpose's key; empty for single values). Lossless and
    the same for every section, so a spreadsheet filters it by section."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for section, value in records.items():
        if isinstance(value, dict):
            for field, item in value.items():
                writer.writerow((section, "", field, _cell(item)))
        elif isinstance(value, list):
            for index, item in enumerate(value, start=1):
                if isinstance(item, dict):
                    name = _cell(item.get(_ENTRY_NAME.get(section, ""), index))
                    for field, cell in item.items():
                        writer.writerow((section, name, field, _cell(cell)))
                else:
                    writer.writerow((section, str(index), "", _cell(item)))
        else:
            writer.writerow((section, "", "", _cell(value)))
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # A cell a spreadsheet would run as a formula (CSV injection) is quoted as text.
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text
