"""The audit app's subject data: the token that links audit entries to a subject
(DESIGN "Declarations"). Erasing it, last, after every other step has been audited, leaves
the chain intact and the entries anonymous."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext, gettext_noop

from apps.audit.services import forget_subject_token
from apps.core.subject_data import (
    INACTIVE_SUBJECTS,
    ModelEffect,
    PeriodOf,
    SubjectDataStore,
    declare,
    describe_period,
    frozen,
    not_applicable,
    removed_with_inactive_subjects,
)
from apps.tenants.models import Tenant


def _export(tenant: Tenant, subject_key: str) -> dict[str, Any]:
    return {"note": "Operations on your data are recorded in a tamper-evident audit trail "
                    "under a random token that is deleted when your data is erased."}


def _erase(tenant: Tenant, subject_key: str) -> int:
    return forget_subject_token(tenant=tenant, subject_key=subject_key)


def _text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("The link between you and the audit trail is deleted when your data is "
                   "erased or after %(inactive)s without any activity; the audit entries it "
                   "linked stay, anonymous, for %(entries)s.") % {
        "inactive": describe_period(period(INACTIVE_SUBJECTS)),
        "entries": describe_period(period("audit_entries"))}


declare(SubjectDataStore(
    name="audit.subject_token",
    category=gettext_noop("audit trail link"),
    models=("audit.SubjectAuditToken",),
    order=1000,
    export=_export,
    erase=_erase,
    restrict=frozen("Kept, and not removed with inactive subjects; the token is never "
                    "processed, only written beside audit entries."),
    rectify=not_applicable("A random token: there is nothing in it to correct."),
    retention=removed_with_inactive_subjects(_text),
    model_effect=ModelEffect.NONE,
))
