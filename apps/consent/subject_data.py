"""The consent app's subject data: the current state of a subject's choices (level and
flags, per-purpose decisions) and the ledger that proves them (DESIGN "Declarations").
Erased state first, the ledger (the proof) last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from apps.consent.models import ConsentRecord, ConsentState, SubjectState
from apps.core.subject_data import (
    INACTIVE_SUBJECTS,
    Correction,
    Expiry,
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
from apps.tenants.models import Tenant


def _rectify(tenant: Tenant, subject_key: str, correction: Correction) -> dict[str, Any]:
    """Corrected decisions and level, recorded as the subject's own (the ledger keeps the
    old ones as proof: a correction is a new entry)."""
    from apps.consent.services import record_consents

    consents, level = correction.changes.get("consents") or {}, correction.changes.get("level")
    if not consents and level is None:
        return {}
    record_consents(tenant=tenant, subject_key=subject_key, decisions=consents, level=level,
                    source=correction.source, actor=correction.actor,
                    method="privacy-request-rectification")
    outcome: dict[str, Any] = {"consents_changed": sorted(consents)}
    if level is not None:
        outcome["level"] = level
    return outcome


def _expired_ledger(tenant: Tenant, cutoff: datetime) -> QuerySet[ConsentRecord]:
    """A subject's whole ledger, once their last change is older than the cutoff."""
    changed_since = ConsentRecord.objects.for_tenant(tenant).filter(
        subject_key=OuterRef("subject_key"), captured_at__gte=cutoff)
    # Served by consentrecord_subject_idx (tenant, subject_key, captured_at).
    return (ConsentRecord.objects.for_tenant(tenant).filter(captured_at__lt=cutoff)
            .exclude(Exists(changed_since)))


def _ledger_text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("Your history of choices is kept as proof of what you agreed to (GDPR "
                   "Art. 7(1)) for %(period)s after your last change, then deleted.") % {
        "period": describe_period(period("consent_ledger"))}


def _while_active(sentence: str) -> RetentionRule:
    """The rule of state kept while the subject is active (``sentence``: marked with
    ``gettext_noop``, its ``%(period)s`` the inactivity period)."""

    def text(tenant: Tenant, period: PeriodOf) -> str:
        return gettext(sentence) % {"period": describe_period(period(INACTIVE_SUBJECTS))}

    return removed_with_inactive_subjects(text)


_FROZEN = frozen("Kept, and not removed with inactive subjects; the restriction itself is "
                 "what training, serving and ingestion read.")
_export_level, _erase_level = subject_rows(SubjectState, (
    "level", "restricted", "objected", "objected_at", "do_not_ask_until", "updated_at"))
_export_state, _erase_state = subject_rows(ConsentState, (
    "purpose__key", "granted", "notice__version", "source", "method", "captured_at"))
_export_ledger, _erase_ledger = subject_rows(ConsentRecord, (
    "kind", "purpose__key", "granted", "level", "notice__version", "source", "method",
    "captured_at"))

declare(
    SubjectDataStore(
        name="consent.subject_state",
        category=gettext_noop("consent: personalization level and flags"),
        models=("consent.SubjectState",), order=880,
        export=_export_level, erase=_erase_level, restrict=_FROZEN,
        rectify=not_applicable("The level is corrected with the current choices "
                               "(consent.state)."),
        retention=_while_active(gettext_noop(
            "Your personalization level and flags are kept while you use the service, and "
            "deleted after %(period)s without any activity.")),
        model_effect=ModelEffect.NONE,
    ),
    SubjectDataStore(
        name="consent.state",
        category=gettext_noop("consent: current choices"),
        models=("consent.ConsentState",), order=890,
        export=_export_state, erase=_erase_state, restrict=_FROZEN, rectify=_rectify,
        retention=_while_active(gettext_noop(
            "Your current choices are kept while you use the service, and deleted after "
            "%(period)s without any activity.")),
        model_effect=ModelEffect.NONE,
    ),
    SubjectDataStore(
        name="consent.ledger",
        category=gettext_noop("consent: history of choices"),
        models=("consent.ConsentRecord",), order=900,
        export=_export_ledger, erase=_erase_ledger,
        restrict=frozen("Kept past its retention period while the subject is restricted."),
        rectify=not_applicable("Proof of what was agreed is never edited: a correction is "
                               "a new entry (consent.state)."),
        retention=RetentionRule(
            category="consent_ledger", text=_ledger_text,
            expiry=Expiry(
                label=gettext_lazy("Consent ledger"),
                description=gettext_lazy(
                    "A subject's consent records (proof of consent, GDPR Art. 7(1)) are "
                    "deleted 5 years after their last change. Default 1826 days."),
                default_days=5 * 365 + 1, order=30, expired=_expired_ledger),
            dated=False),
        model_effect=ModelEffect.NONE,
    ),
)
