"""Rectification (GDPR Art. 16 / CCPA correct): new consent decisions and level, and
deletion of chosen interactions, applied at once."""

from __future__ import annotations

from typing import Any

from apps.audit import services as audit
from apps.privacy.models import PrivacyRequest
from apps.privacy.services.notifications import notify_subject
from apps.privacy.services.requests import (
    CONSENT_SOURCES,
    Status,
    transition_privacy_request,
)


def apply_rectification(*, privacy_request: PrivacyRequest, actor: Any = None,
                        payload: dict[str, Any] | None = None) -> PrivacyRequest:
    """Art. 16 / CCPA correct: new consent decisions and level (recorded in the ledger as
    the subject's own), and deletion of the chosen interactions from their history."""
    from apps.consent.services import record_consents
    from apps.events.selectors import list_subject_events

    pr = privacy_request
    changes = payload if payload is not None else dict(pr.payload)
    if pr.status == Status.VERIFIED:
        transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
    outcome: dict[str, Any] = {}
    consents, level = changes.get("consents") or {}, changes.get("level")
    if consents or level is not None:
        record_consents(tenant=pr.tenant, subject_key=pr.subject_key, decisions=consents,
                        level=level, source=CONSENT_SOURCES[pr.channel], actor=actor,
                        method="privacy-request-rectification")
        outcome["consents_changed"] = sorted(consents)
        if level is not None:
            outcome["level"] = level
    event_ids = changes.get("delete_events") or []
    if event_ids:
        # The events app has no service to delete chosen events; its selector's queryset is
        # the subject's own history in this tenant.
        deleted, _ = list_subject_events(tenant=pr.tenant, subject_key=pr.subject_key).filter(
            event_id__in=event_ids).delete()
        outcome["events_deleted"] = deleted
        audit.record(pr.tenant, "privacy.events_rectified", actor, pr,
                     {"reference": pr.reference[:8], "events_deleted": deleted})
    pr.result = {**pr.result, "rectification": outcome}
    pr.save(update_fields=["result", "updated_at"])
    notify_subject(pr, "completed", {"applied": outcome})
    return transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)
