"""The states of a privacy request (STYLE S12) and the one way to move between them.

Statuses move only through :func:`transition_privacy_request`, along :data:`TRANSITIONS`,
and every move writes an audit entry in the same transaction. Audit entries about requests
point at the request (which is kept as proof), never pass the subject key: an erasure deletes
the subject's audit token last, and nothing written afterwards may bring it back.

Everything that fulfils a request builds on this module; it imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import status as http

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.privacy.kinds import find_kind
from apps.privacy.models import PrivacyRequest
from apps.webhooks import services as webhooks

logger = logging.getLogger("privacy.requests")

Status = PrivacyRequest.Status
Channel = PrivacyRequest.Channel

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.RECEIVED: frozenset({Status.VERIFYING, Status.VERIFIED, Status.REJECTED}),
    Status.VERIFYING: frozenset({Status.VERIFYING, Status.VERIFIED, Status.REJECTED}),
    # An officer's approval gate (issue 17): a verified request of a kind the tenant holds
    # for approval waits; approval sends it back to ``verified``, whence it is fulfilled.
    Status.VERIFIED: frozenset({Status.AWAITING_APPROVAL, Status.IN_PROGRESS,
                                Status.REJECTED}),
    Status.AWAITING_APPROVAL: frozenset({Status.VERIFIED, Status.REJECTED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.REJECTED}),
    Status.COMPLETED: frozenset(),
    Status.REJECTED: frozenset(),
}

CONSENT_SOURCES = {Channel.PORTAL: "portal", Channel.API: "api", Channel.MAIL: "admin",
                   Channel.PHONE: "admin"}


def webhook_event_for(status: str) -> str | None:
    """The webhook event a request entering ``status`` sends: ``privacy_request.<status>``
    where the webhook catalogue has it (received, verified, awaiting_approval, completed,
    rejected), else none (verifying, in_progress)."""
    event = f"privacy_request.{status}"
    return event if event in webhooks.EventType.values else None


def announce_status(pr: PrivacyRequest, *, previous: str | None = None) -> None:
    """Queue the webhook of the status ``pr`` just entered (in the caller's transaction).
    The one place requests meet webhooks: creation and :func:`transition_privacy_request`
    call it. Ids and statuses only, never the subject."""
    event = webhook_event_for(pr.status)
    if event is None:
        return
    webhooks.emit_webhook_event(
        tenant_id=pr.tenant_id, event_type=event, dedupe_key=f"{event}:{pr.pk}",
        data={"id": pr.pk, "kind": pr.kind, "regime": pr.regime, "status": pr.status,
              "previous_status": previous,
              "due_at": pr.due_at.isoformat() if pr.due_at else None})


def audit_details(pr: PrivacyRequest, **extra: Any) -> dict[str, Any]:
    return {"kind": pr.kind, "regime": pr.regime, "channel": pr.channel,
            "reference": pr.reference[:8], **extra}


def transition_privacy_request(
    privacy_request: PrivacyRequest, *, to: str, actor: Any = None,
    details: Mapping[str, Any] | None = None,
) -> PrivacyRequest:
    """Move a (locked) request to ``to`` if :data:`TRANSITIONS` allows it, stamp the time,
    write the audit entry and queue the status's webhook (:func:`announce_status`). Closing
    (completed/rejected) empties the payload; the contact is
    wiped too unless an export still has to reach the requester."""
    current = privacy_request.status
    if to not in TRANSITIONS[current]:
        raise ApplicationError(
            f"A {current} request cannot become {to}.", code="invalid_transition",
            status_code=http.HTTP_409_CONFLICT, details={"status": current, "to": to})
    now = timezone.now()
    pr = privacy_request
    pr.status = to
    fields = ["status", "updated_at"]
    if to == Status.VERIFIED and current == Status.AWAITING_APPROVAL:
        pr.approved_at = now
        fields.append("approved_at")
    elif to == Status.VERIFIED:
        pr.verified_at = now
        fields.append("verified_at")
    elif to == Status.IN_PROGRESS:
        pr.started_at = pr.started_at or now
        fields.append("started_at")
    elif to == Status.COMPLETED:
        pr.completed_at = now
        fields.append("completed_at")
    elif to == Status.REJECTED:
        pr.rejected_at = now
        fields.append("rejected_at")
    if to in PrivacyRequest.CLOSED_STATUSES:
        pr.closed_at = now
        pr.payload = {}
        fields += ["closed_at", "payload"]
        policy = find_kind(pr.kind)
        keep_contact = (to == Status.COMPLETED and policy is not None
                        and policy.produces_export)
        if not keep_contact:
            _wipe_contact(pr, fields, now)
    pr.save(update_fields=fields)
    audit.record(pr.tenant, f"privacy.request_{to}", actor, pr,
                 audit_details(pr, previous=current, **(details or {})))
    announce_status(pr, previous=current)
    logger.info("privacy.request_%s id=%s", to, pr.pk)
    return pr


def _wipe_contact(pr: PrivacyRequest, fields: list[str], now: datetime) -> None:
    if pr.contact_ciphertext and bytes(pr.contact_ciphertext):
        pr.contact_ciphertext = b""
        pr.contact_wiped_at = now
        fields += ["contact_ciphertext", "contact_wiped_at"]


def wipe_contact(*, privacy_request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """Forget how to reach the requester (nothing more will be sent)."""
    fields: list[str] = []
    _wipe_contact(privacy_request, fields, timezone.now())
    if fields:
        privacy_request.save(update_fields=[*fields, "updated_at"])
        audit.record(privacy_request.tenant, "privacy.contact_wiped", actor, privacy_request,
                     audit_details(privacy_request))
    return privacy_request


def lock_request(privacy_request: PrivacyRequest) -> PrivacyRequest:
    """Re-read the request under ``select_for_update`` (call inside a transaction)."""
    return (PrivacyRequest.objects.for_tenant(privacy_request.tenant_id)
            .select_for_update(of=("self",)).select_related("tenant")
            .get(pk=privacy_request.pk))

