"""Restriction (Art. 18), objection (Art. 21), opt-out of sale/sharing and limit of
sensitive data (CCPA): applied at once through the consent services, in the transaction
that verifies the request."""

from __future__ import annotations

from typing import Any

from apps.privacy.models import PrivacyRequest
from apps.privacy.services.notifications import notify_subject
from apps.privacy.services.requests import (
    CONSENT_SOURCES,
    Kind,
    Status,
    transition_privacy_request,
)


def _withdraw(pr: PrivacyRequest, keys: list[str], actor: Any) -> None:
    from apps.consent.services import record_consents

    if keys:
        record_consents(tenant=pr.tenant, subject_key=pr.subject_key,
                        decisions=dict.fromkeys(keys, False),
                        source=CONSENT_SOURCES[pr.channel], actor=actor,
                        method=f"privacy-request-{pr.kind}".replace("_", "-"))


def apply_consent_flags(*, privacy_request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """Restriction (Art. 18), objection (Art. 21), opt-out of sale/sharing and limit of
    sensitive data (CCPA), applied at once through the consent services. The "limit" right
    has no consent flag of its own: it withdraws every purpose flagged as using sensitive
    data. Runs inside the verifying transaction."""
    from apps.consent.selectors import list_purposes
    from apps.consent.services import record_objection, set_restriction

    pr = privacy_request
    transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
    source = CONSENT_SOURCES[pr.channel]
    outcome: dict[str, Any]
    if pr.kind == Kind.RESTRICTION:
        set_restriction(tenant=pr.tenant, subject_key=pr.subject_key, restricted=True,
                        source=source, actor=actor)
        outcome = {"restricted": True}
    elif pr.kind == Kind.OBJECTION:
        record_objection(tenant=pr.tenant, subject_key=pr.subject_key, source=source,
                         actor=actor)
        outcome = {"objected": True}
    else:
        purposes = list_purposes(tenant=pr.tenant)
        if pr.kind == Kind.OPT_OUT:
            keys = [p.key for p in purposes if p.is_sale_or_sharing]
        else:
            keys = [p.key for p in purposes if p.uses_sensitive_data]
        _withdraw(pr, keys, actor)
        outcome = {"withdrawn_purposes": keys}
    pr.result = {**pr.result, "applied": outcome}
    pr.save(update_fields=["result", "updated_at"])
    notify_subject(pr, "completed", {"applied": outcome})
    return transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)
