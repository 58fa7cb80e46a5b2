"""The lifecycle of a privacy request (STYLE S3, S12).

Statuses move only through :func:`transition_privacy_request`, along :data:`TRANSITIONS`,
and every move writes an audit entry in the same transaction. Audit entries about requests
point at the request (which is kept as proof), never pass the subject key: an erasure deletes
the subject's audit token last, and nothing written afterwards may bring it back.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import status as http

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.privacy.models import PrivacyRequest
from apps.privacy.services.deadlines import (
    DEFAULT_AT_RISK_DAYS,
    compute_clock,
    parse_holidays,
)
from apps.privacy.services.notifications import Contact, encrypt_contact, notify_subject
from apps.tenants.models import Tenant
from apps.tenants.services import tenant_setting

logger = logging.getLogger("privacy.requests")

Kind = PrivacyRequest.Kind
Status = PrivacyRequest.Status
Channel = PrivacyRequest.Channel
Verification = PrivacyRequest.Verification

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.RECEIVED: frozenset({Status.VERIFYING, Status.VERIFIED, Status.REJECTED}),
    Status.VERIFYING: frozenset({Status.VERIFYING, Status.VERIFIED, Status.REJECTED}),
    Status.VERIFIED: frozenset({Status.IN_PROGRESS, Status.REJECTED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.REJECTED}),
    Status.COMPLETED: frozenset(),
    Status.REJECTED: frozenset(),
}

#: Kinds applied at once through the consent services, without a fulfilment job.
FLAG_KINDS = frozenset({Kind.RESTRICTION, Kind.OBJECTION, Kind.OPT_OUT, Kind.LIMIT_SENSITIVE})
#: Kinds that run every registered handler in a fulfilment job.
JOB_KINDS = frozenset({Kind.ACCESS, Kind.PORTABILITY, Kind.ERASURE})
#: CCPA: opt-out and limit requests need no verification (regulations §7026(d), §7027(e)).
NO_VERIFICATION_KINDS = frozenset({Kind.OPT_OUT, Kind.LIMIT_SENSITIVE})
EXPORT_KINDS = frozenset({Kind.ACCESS, Kind.PORTABILITY})

HOLIDAYS_SETTING = "privacy_holidays"
AT_RISK_SETTING = "privacy_at_risk_days"

#: Where a subject can complain, by regime (sent with every rejection: GDPR Art. 12(4)).
COMPLAINT_RIGHTS = {
    "gdpr": "You have the right to lodge a complaint with a data protection supervisory "
            "authority, in particular in the EU member state where you live or work, and to "
            "seek a judicial remedy (GDPR Art. 12(4), 77 and 79).",
    "ccpa": "You may contact the California Privacy Protection Agency (cppa.ca.gov) or the "
            "California Attorney General (oag.ca.gov/privacy) if you believe your rights "
            "were not respected.",
}

CONSENT_SOURCES = {Channel.PORTAL: "portal", Channel.API: "api", Channel.MAIL: "admin",
                   Channel.PHONE: "admin"}


def holidays_of(tenant: Tenant) -> frozenset:
    return parse_holidays(tenant_setting(tenant, HOLIDAYS_SETTING, []))


def at_risk_days(tenant: Tenant) -> int:
    value = tenant_setting(tenant, AT_RISK_SETTING, DEFAULT_AT_RISK_DAYS)
    return value if isinstance(value, int) and value >= 0 else DEFAULT_AT_RISK_DAYS


def _validate_choice(value: str, choices: Any, code: str, what: str) -> str:
    if value not in choices.values:
        raise ApplicationError(f"Unknown {what} '{value}'.", code=code,
                               details={"allowed": list(choices.values)})
    return value


def _audit_details(pr: PrivacyRequest, **extra: Any) -> dict[str, Any]:
    return {"kind": pr.kind, "regime": pr.regime, "channel": pr.channel,
            "reference": pr.reference[:8], **extra}


def transition_privacy_request(
    privacy_request: PrivacyRequest, *, to: str, actor: Any = None,
    details: Mapping[str, Any] | None = None,
) -> PrivacyRequest:
    """Move a (locked) request to ``to`` if :data:`TRANSITIONS` allows it, stamp the time and
    write the audit entry. Closing (completed/rejected) empties the payload; the contact is
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
    if to == Status.VERIFIED:
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
        keep_contact = to == Status.COMPLETED and pr.kind in EXPORT_KINDS
        if not keep_contact:
            _wipe_contact(pr, fields, now)
    pr.save(update_fields=fields)
    audit.record(pr.tenant, f"privacy.request_{to}", actor, pr,
                 _audit_details(pr, previous=current, **(details or {})))
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
                     _audit_details(privacy_request))
    return privacy_request


def lock_request(privacy_request: PrivacyRequest) -> PrivacyRequest:
    """Re-read the request under ``select_for_update`` (call inside a transaction)."""
    return (PrivacyRequest.objects.for_tenant(privacy_request.tenant_id)
            .select_for_update(of=("self",)).select_related("tenant")
            .get(pk=privacy_request.pk))


def _new_reference() -> str:
    return secrets.token_urlsafe(16)  # 128 bits


@transaction.atomic
def create_privacy_request(
    *,
    tenant: Tenant,
    kind: str,
    regime: str | None,
    channel: str,
    subject_key: str,
    contact: Contact | None = None,
    payload: Mapping[str, Any] | None = None,
    received_at: datetime | None = None,
    verification: str | None = None,
    acknowledged: bool = False,
    actor: Any = None,
    logged_by: Any = None,
    origin: str = "",
) -> PrivacyRequest:
    """Record a request and start its clock; then move it as far as it can go at once:

    * ``verification`` given (API: the tenant attests; a verified portal session; staff):
      verified, then fulfilled (flag kinds at once, export/erasure by a job after commit);
    * opt-out and limit requests need no verification: applied at once;
    * otherwise it waits in ``received`` (the portal then starts email verification).

    ``subject_key`` is the pseudonym (the raw id never reaches this layer, except inside
    ``contact``, which is stored encrypted).
    """
    _validate_choice(kind, Kind, "invalid_kind", "kind")
    regime = regime or tenant.default_regime
    _validate_choice(regime, PrivacyRequest.Regime, "invalid_regime", "regime")
    _validate_choice(channel, Channel, "invalid_channel", "channel")
    if verification is not None:
        _validate_choice(verification, Verification, "invalid_verification", "verification")
    now = timezone.now()
    received = received_at or now
    if received > now:
        raise ApplicationError("A request cannot be received in the future.",
                               code="invalid_received_at")
    clock = compute_clock(regime=regime, kind=kind, received_at=received,
                          holidays=holidays_of(tenant))
    payload = validate_payload(kind, payload or {})
    pr = PrivacyRequest(
        tenant=tenant, reference=_new_reference(), kind=kind, regime=regime, channel=channel,
        subject_key=subject_key, payload=payload, received_at=received, due_at=clock.due_at,
        original_due_at=clock.due_at, ack_due_at=clock.ack_due_at, logged_by=logged_by,
        origin=origin,
    )
    if contact is not None:
        pr.contact_ciphertext = encrypt_contact(contact)
        pr.contact_is_email = bool(contact.email)
    if acknowledged or channel == Channel.API:
        # API: the tenant's backend received the answer and informs its own user.
        pr.acknowledged_at = now
    pr.full_clean(exclude=["tenant", "contact_ciphertext", "logged_by"])
    pr.save()
    audit.record(tenant, "privacy.request_received", actor, pr,
                 _audit_details(pr, due_at=pr.due_at.isoformat(),
                                logged_by_staff=logged_by is not None))
    if verification is None and kind in NO_VERIFICATION_KINDS:
        verification = Verification.NOT_REQUIRED
    if verification is not None and verification != Verification.NONE:
        verify_privacy_request(privacy_request=pr, method=verification, actor=actor)
    elif pr.contact_is_email and channel != Channel.PORTAL:
        # Mail/phone with an email address: the acknowledgment (CCPA §7021(a)).
        _acknowledge(pr, actor)
    pr.refresh_from_db()
    return pr


def _acknowledge(pr: PrivacyRequest, actor: Any) -> None:
    if notify_subject(pr, "received") and pr.acknowledged_at is None:
        pr.acknowledged_at = timezone.now()
        pr.save(update_fields=["acknowledged_at", "updated_at"])


def validate_payload(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Rectification carries what to change; other kinds carry nothing."""
    if not payload:
        return {}
    if kind != Kind.RECTIFICATION:
        raise ApplicationError("Only rectification requests carry details.",
                               code="unexpected_details")
    allowed = {"consents", "level", "delete_events"}
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise ApplicationError("Unknown rectification details.", code="invalid_details",
                               details={"unknown": unknown, "allowed": sorted(allowed)})
    consents = payload.get("consents", {})
    if not isinstance(consents, Mapping) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in consents.items()):
        raise ApplicationError("'consents' maps purpose keys to true or false.",
                               code="invalid_details")
    level = payload.get("level")
    if level is not None and not isinstance(level, str):
        raise ApplicationError("'level' is a string.", code="invalid_details")
    events = payload.get("delete_events", [])
    if (not isinstance(events, list) or len(events) > 1000
            or not all(isinstance(e, str) and 0 < len(e) <= 128 for e in events)):
        raise ApplicationError("'delete_events' is a list of at most 1000 event ids.",
                               code="invalid_details")
    cleaned: dict[str, Any] = {}
    if consents:
        cleaned["consents"] = dict(consents)
    if level is not None:
        cleaned["level"] = level
    if events:
        cleaned["delete_events"] = sorted(set(events))
    return cleaned


def verify_privacy_request(*, privacy_request: PrivacyRequest, method: str,
                           actor: Any = None) -> PrivacyRequest:
    """Mark the requester's identity as established and start fulfilment. Idempotent: an
    already verified (or later) request is returned unchanged."""
    with transaction.atomic():
        pr = lock_request(privacy_request)
        if pr.status not in {Status.RECEIVED, Status.VERIFYING}:
            return pr
        pr.verification_method = method
        pr.save(update_fields=["verification_method", "updated_at"])
        transition_privacy_request(pr, to=Status.VERIFIED, actor=actor,
                                   details={"method": method})
        if pr.acknowledged_at is None and method in {Verification.TENANT_ATTESTED,
                                                     Verification.NOT_REQUIRED}:
            pr.acknowledged_at = timezone.now()
            pr.save(update_fields=["acknowledged_at", "updated_at"])
        dispatch_fulfilment(privacy_request=pr, actor=actor)
    return pr


def dispatch_fulfilment(*, privacy_request: PrivacyRequest, actor: Any = None) -> None:
    """Fulfil a verified request: consent flags and rectifications at once, in this
    transaction; access, portability and erasure by a durable job sent after commit. A
    rectification without details waits for the subject's corrections in the portal."""
    from apps.privacy.services.flags import apply_consent_flags
    from apps.privacy.services.jobs import enqueue_fulfilment
    from apps.privacy.services.rectification import apply_rectification

    pr = privacy_request
    if pr.kind in FLAG_KINDS:
        apply_consent_flags(privacy_request=pr, actor=actor)
    elif pr.kind == Kind.RECTIFICATION:
        if pr.payload:
            apply_rectification(privacy_request=pr, actor=actor)
    elif pr.kind in JOB_KINDS:
        enqueue_fulfilment(privacy_request=pr, actor=actor)


@transaction.atomic
def extend_privacy_request(*, privacy_request: PrivacyRequest, reason: str,
                           actor: Any = None) -> PrivacyRequest:
    """Use the one extension the regime allows (GDPR: +2 months, decided within the first
    month; CCPA: +45 days, within the first 45), and tell the subject why. The extension is
    recorded beside the status, which does not change."""
    pr = lock_request(privacy_request)
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("An extension needs a reason for the subject.",
                               code="reason_required")
    if not pr.is_open:
        raise ApplicationError("A closed request cannot be extended.", code="request_closed",
                               status_code=http.HTTP_409_CONFLICT)
    if pr.is_extended:
        raise ApplicationError("This request was already extended once.",
                               code="already_extended", status_code=http.HTTP_409_CONFLICT)
    clock = compute_clock(regime=pr.regime, kind=pr.kind, received_at=pr.received_at,
                          holidays=holidays_of(pr.tenant))
    if clock.extended_due_at is None:
        raise ApplicationError("This kind of request cannot be extended.",
                               code="not_extendable", status_code=http.HTTP_409_CONFLICT)
    now = timezone.now()
    if now >= clock.extension_deadline:
        raise ApplicationError(
            "The extension had to be decided and sent before the original due date.",
            code="extension_too_late", status_code=http.HTTP_409_CONFLICT,
            details={"deadline": clock.extension_deadline.isoformat()})
    previous = pr.due_at
    pr.extended_at = now
    pr.extension_reason = reason
    pr.due_at = clock.extended_due_at
    pr.save(update_fields=["extended_at", "extension_reason", "due_at", "updated_at"])
    notify_subject(pr, "extended", {"reason": reason})
    audit.record(pr.tenant, "privacy.request_extended", actor, pr,
                 _audit_details(pr, previous_due_at=previous.isoformat(),
                                due_at=pr.due_at.isoformat()))
    return pr


@transaction.atomic
def reject_privacy_request(*, privacy_request: PrivacyRequest, reason: str,
                           actor: Any = None) -> PrivacyRequest:
    """Refuse a request with a reason; the subject's message names their right to complain.
    An erasure already under way cannot be rejected (part of it is done)."""
    pr = lock_request(privacy_request)
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("A rejection needs a reason for the subject.",
                               code="reason_required")
    if pr.status == Status.IN_PROGRESS and pr.kind == Kind.ERASURE:
        raise ApplicationError("An erasure under way cannot be rejected.",
                               code="erasure_in_progress", status_code=http.HTTP_409_CONFLICT)
    pr.rejection_reason = reason
    pr.save(update_fields=["rejection_reason", "updated_at"])
    notify_subject(pr, "rejected", {"reason": reason,
                                    "complaint": COMPLAINT_RIGHTS.get(pr.regime, "")})
    from apps.privacy.services.jobs import cancel_jobs

    cancel_jobs(privacy_request=pr)
    return transition_privacy_request(pr, to=Status.REJECTED, actor=actor)


def fulfil_now(*, privacy_request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """Admin action: (re)start fulfilment of a verified or stalled request. A request not yet
    verified is refused: nothing is released or erased before verification."""
    with transaction.atomic():
        pr = lock_request(privacy_request)
        if pr.status not in {Status.VERIFIED, Status.IN_PROGRESS}:
            raise ApplicationError("Only a verified request can be fulfilled.",
                                   code="not_verified", status_code=http.HTTP_409_CONFLICT)
        if pr.kind == Kind.RECTIFICATION and not pr.payload:
            transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
            pr.result = {**pr.result, "rectification": {"note": "completed by staff"}}
            pr.save(update_fields=["result", "updated_at"])
            notify_subject(pr, "completed")
            transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)
        else:
            audit.record(pr.tenant, "privacy.fulfilment_requested", actor, pr,
                         _audit_details(pr))
            dispatch_fulfilment(privacy_request=pr, actor=actor)
    pr.refresh_from_db()
    return pr


def resend(*, privacy_request: PrivacyRequest, actor: Any = None, origin: str = "") -> str:
    """Admin action: send again what the requester is waiting for: a fresh verification
    link, a fresh download link, or the acknowledgment. Returns what was sent."""
    from apps.privacy.services.export import reissue_download_link
    from apps.privacy.services.verification import start_email_verification

    with transaction.atomic():
        pr = lock_request(privacy_request)
        if origin and not pr.origin:
            pr.origin = origin
            pr.save(update_fields=["origin", "updated_at"])
        if not pr.contact_is_email or not bytes(pr.contact_ciphertext or b""):
            raise ApplicationError("There is no email address to send to.",
                                   code="no_contact", status_code=http.HTTP_409_CONFLICT)
        if pr.status in {Status.RECEIVED, Status.VERIFYING}:
            start_email_verification(privacy_request=pr, actor=actor)
            sent = "verification"
        elif pr.status == Status.COMPLETED and pr.kind in EXPORT_KINDS:
            reissue_download_link(privacy_request=pr, actor=actor)
            sent = "download"
        elif pr.is_open:
            notify_subject(pr, "received")
            sent = "acknowledgment"
        else:
            raise ApplicationError("Nothing to resend for this request.",
                                   code="nothing_to_resend", status_code=http.HTTP_409_CONFLICT)
        audit.record(pr.tenant, "privacy.resent", actor, pr, _audit_details(pr, sent=sent))
    return sent
