"""Restriction (GDPR Art. 18), objection (Art. 21), opt-out of sale/sharing and limit of
sensitive data (CCPA): applied at once through the consent services, in the transaction
that verifies the request. Each kind has its own fulfil function, named by the kinds table;
they share only the frame (in progress → the flag → result, message → completed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.privacy.models import PrivacyRequest
from apps.privacy.services.lifecycle import (
    CONSENT_SOURCES,
    Status,
    transition_privacy_request,
)
from apps.privacy.services.notifications import notify_subject

#: Applies one flag for the request's subject (consent source given) and says what it did.
Flag = Callable[[PrivacyRequest, str, Any], dict[str, Any]]


def _apply(pr: PrivacyRequest, actor: Any, flag: Flag) -> PrivacyRequest:
    transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
    outcome = flag(pr, CONSENT_SOURCES[pr.channel], actor)
    pr.result = {**pr.result, "applied": outcome}
    pr.save(update_fields=["result", "updated_at"])
    notify_subject(pr, "completed", {"applied": outcome})
    return transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)


def _withdraw(pr: PrivacyRequest, keys: list[str], source: str, actor: Any) -> None:
    from apps.consent.services import record_consents

    if keys:
        record_consents(tenant=pr.tenant, subject_key=pr.subject_key,
                        decisions=dict.fromkeys(keys, False), source=source, actor=actor,
                        method=f"privacy-request-{pr.kind}".replace("_", "-"))


def apply_restriction(*, privacy_request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """Art. 18: the subject's data is kept but excluded from all processing."""
    from apps.consent.services import set_restriction

    def restrict(pr: PrivacyRequest, source: str, actor: Any) -> dict[str, Any]:
        set_restriction(tenant=pr.tenant, subject_key=pr.subject_key, restricted=True,
                        source=source, actor=actor)
        return {"restricted": True}

    return _apply(privacy_request, actor, restrict)


def apply_objection(*, privacy_request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """Art. 21: no more personalization for the subject."""
    from apps.consent.services import record_objection

    def object_(pr: PrivacyRequest, source: str, actor: Any) -> dict[str, Any]:
        record_objection(tenant=pr.tenant, subject_key=pr.subject_key, source=source,
                         actor=actor)
        return {"objected": True}

    return _apply(privacy_request, actor, object_)


def apply_opt_out(*, privacy_request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """CCPA opt-out of sale/sharing: withdraws every purpose flagged as a sale or sharing."""
    from apps.consent.selectors import list_purposes

    def opt_out(pr: PrivacyRequest, source: str, actor: Any) -> dict[str, Any]:
        keys = [p.key for p in list_purposes(tenant=pr.tenant) if p.is_sale_or_sharing]
        _withdraw(pr, keys, source, actor)
        return {"withdrawn_purposes": keys}

    return _apply(privacy_request, actor, opt_out)


def apply_limit_sensitive(*, privacy_request: PrivacyRequest,
                          actor: Any = None) -> PrivacyRequest:
    """CCPA "limit the use of my sensitive personal information": the right has no consent
    flag of its own, so it withdraws every purpose flagged as using sensitive data."""
    from apps.consent.selectors import list_purposes

    def limit(pr: PrivacyRequest, source: str, actor: Any) -> dict[str, Any]:
        keys = [p.key for p in list_purposes(tenant=pr.tenant) if p.uses_sensitive_data]
        _withdraw(pr, keys, source, actor)
        return {"withdrawn_purposes": keys}

    return _apply(privacy_request, actor, limit)
