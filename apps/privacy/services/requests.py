"""Receiving a privacy request and the staff's actions on it (STYLE S3, S12): create,
extend, reject, fulfil now, resend. What a kind needs (verification, clock, details,
fulfilment) is read from the kinds table (:mod:`apps.privacy.kinds`); statuses move through
:mod:`~apps.privacy.services.lifecycle`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy
from rest_framework import status as http

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.privacy import tenant_settings as privacy_settings
from apps.privacy.kinds import find_kind, get_kind
from apps.privacy.models import PrivacyRequest
from apps.privacy.services.deadlines import (
    compute_clock,
    parse_holidays,
)
from apps.privacy.services.export import reissue_download_link
from apps.privacy.services.fulfilment import dispatch_fulfilment
from apps.privacy.services.jobs import cancel_jobs
from apps.privacy.services.lifecycle import (
    announce_status,
    audit_details,
    lock_request,
    transition_privacy_request,
)
from apps.privacy.services.notifications import Contact, encrypt_contact, notify_subject
from apps.privacy.services.verification import start_email_verification, verify_privacy_request
from apps.tenants.models import Tenant
from apps.tenants.services import setting_value

Status = PrivacyRequest.Status
Channel = PrivacyRequest.Channel
Verification = PrivacyRequest.Verification

HOLIDAYS_SETTING = privacy_settings.HOLIDAYS.name  # declared in apps/privacy/tenant_settings.py
AT_RISK_SETTING = privacy_settings.AT_RISK_DAYS.name

#: Where a subject can complain, by regime (sent with every rejection: GDPR Art. 12(4)).
COMPLAINT_RIGHTS = {  # shown to the subject: in their language (apps/privacy/locale)
    "gdpr": gettext_lazy(
        "You have the right to lodge a complaint with a data protection supervisory "
        "authority, in particular in the EU member state where you live or work, and to "
        "seek a judicial remedy (GDPR Art. 12(4), 77 and 79)."),
    "ccpa": gettext_lazy(
        "You may contact the California Privacy Protection Agency (cppa.ca.gov) or the "
        "California Attorney General (oag.ca.gov/privacy) if you believe your rights "
        "were not respected."),
}


def holidays_of(tenant: Tenant) -> frozenset:
    return parse_holidays(setting_value(tenant, privacy_settings.HOLIDAYS))


def at_risk_days(tenant: Tenant) -> int:
    return setting_value(tenant, privacy_settings.AT_RISK_DAYS)


def _validate_choice(value: str, choices: Any, code: str, what: str) -> str:
    if value not in choices.values:
        raise ApplicationError(f"Unknown {what} '{value}'.", code=code,
                               details={"allowed": list(choices.values)})
    return value


def _new_reference() -> str:
    return secrets.token_urlsafe(16)  # 128 bits


@dataclass(frozen=True)
class Filing:
    """What filing a request did: ``request`` is the new request, or the open one of the
    same subject and kind when ``duplicate`` (no second request, no second job)."""

    request: PrivacyRequest
    duplicate: bool


def create_privacy_request(**kwargs: Any) -> PrivacyRequest:
    """:func:`file_privacy_request`, for callers that need only the request (new or open
    duplicate)."""
    return file_privacy_request(**kwargs).request


@transaction.atomic
def file_privacy_request(
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
) -> Filing:
    """Record a request and start its clock; then move it as far as it can go at once:

    * ``verification`` given (API: the tenant attests; a verified portal session; staff):
      verified, then fulfilled by the kind's fulfil function (at once, or by a job after
      commit), unless the tenant holds the kind for an officer's approval
      (``awaiting_approval``, :mod:`apps.privacy.services.gate`);
    * a kind that needs no verification (CCPA opt-out and limit): fulfilled at once;
    * otherwise it waits in ``received`` (the portal then starts email verification).

    **Duplicates.** When the subject already has an open request of this kind, nothing new
    is stored: the answer is that request (``Filing.duplicate``). A verified duplicate
    verifies an open request still waiting for its requester's proof; details different
    from the open request's are refused (``request_open``, 409). The database holds one
    open request per (tenant, subject, kind) (a partial unique constraint), so concurrent
    identical requests make one request and one job.

    A kind the table does not hold, a regime it has no clock for and details the kind does
    not carry are refused before anything is stored.

    ``subject_key`` is the pseudonym (the raw id never reaches this layer, except inside
    ``contact``, which is stored encrypted).
    """
    policy = get_kind(kind)
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
    payload = policy.clean_details(payload or {})
    policy.ensure_resolvable()
    if verification is None and not policy.needs_verification:
        verification = Verification.NOT_REQUIRED
    pr = PrivacyRequest(
        tenant=tenant, reference=_new_reference(), kind=kind, regime=regime,
        channel=channel, subject_key=subject_key, payload=payload, received_at=received,
        due_at=clock.due_at, original_due_at=clock.due_at, ack_due_at=clock.ack_due_at,
        logged_by=logged_by, origin=origin,
    )
    if contact is not None:
        pr.contact_ciphertext = encrypt_contact(contact)
        pr.contact_is_email = bool(contact.email)
    if acknowledged or channel == Channel.API:
        # API: the tenant's backend received the answer and informs its own user.
        pr.acknowledged_at = now
    pr.full_clean(exclude=["tenant", "contact_ciphertext", "logged_by"])
    existing = _open_request(tenant, subject_key, kind)
    for attempt in range(3):
        if existing is not None:
            break
        try:
            with transaction.atomic():
                pr.save()
            break
        except IntegrityError:
            # A concurrent identical request committed first (the partial unique
            # constraint): answer with it; if it closed meanwhile, try again.
            existing = _open_request(tenant, subject_key, kind)
            if existing is None and attempt == 2:
                raise
            pr.pk = None
    if existing is not None:
        return Filing(_join_open_request(existing, channel=channel, payload=payload,
                                         verification=verification, actor=actor), True)
    audit.record(tenant, "privacy.request_received", actor, pr,
                 audit_details(pr, due_at=pr.due_at.isoformat(),
                                logged_by_staff=logged_by is not None))
    announce_status(pr)
    if verification is not None and verification != Verification.NONE:
        verify_privacy_request(privacy_request=pr, method=verification, actor=actor)
    elif pr.contact_is_email and channel != Channel.PORTAL:
        # Mail/phone with an email address: the acknowledgment (CCPA §7021(a)).
        _acknowledge(pr, actor)
    pr.refresh_from_db()
    return Filing(pr, False)


def _open_request(tenant: Tenant, subject_key: str, kind: str) -> PrivacyRequest | None:
    """The subject's open request of ``kind``, locked (at most one: the constraint)."""
    return (PrivacyRequest.objects.for_tenant(tenant)
            .select_for_update(of=("self",)).select_related("tenant")
            .filter(subject_key=subject_key, kind=kind,
                    status__in=list(PrivacyRequest.OPEN_STATUSES)).first())


def _join_open_request(pr: PrivacyRequest, *, channel: str, payload: Mapping[str, Any],
                       verification: str | None, actor: Any) -> PrivacyRequest:
    """A second request for an open one: recorded on it (audit), and its proof of identity
    verifies the open one if that still waits for it."""
    if payload and dict(payload) != dict(pr.payload):
        raise ApplicationError(
            "This subject already has an open request of this kind, with other details.",
            code="request_open", status_code=http.HTTP_409_CONFLICT,
            details={"duplicate_of": pr.pk})
    audit.record(pr.tenant, "privacy.duplicate_received", actor, pr,
                 audit_details(pr, duplicate_channel=channel))
    if (verification is not None and verification != Verification.NONE
            and pr.status in {Status.RECEIVED, Status.VERIFYING}):
        verify_privacy_request(privacy_request=pr, method=verification, actor=actor)
    pr.refresh_from_db()
    return pr


def _acknowledge(pr: PrivacyRequest, actor: Any) -> None:
    if notify_subject(pr, "received") and pr.acknowledged_at is None:
        pr.acknowledged_at = timezone.now()
        pr.save(update_fields=["acknowledged_at", "updated_at"])


def extension_refusal(pr: PrivacyRequest, now: datetime) -> ApplicationError | None:
    """Why ``pr`` cannot be extended now (409 ``ApplicationError``), or ``None`` when it
    can: the one place that decides, for the service and for the admin's "Extend"."""
    if not pr.is_open:
        return ApplicationError("A closed request cannot be extended.", code="request_closed",
                                status_code=http.HTTP_409_CONFLICT)
    if pr.is_extended:
        return ApplicationError("This request was already extended once.",
                                code="already_extended", status_code=http.HTTP_409_CONFLICT)
    clock = compute_clock(regime=pr.regime, kind=pr.kind, received_at=pr.received_at,
                          holidays=holidays_of(pr.tenant))
    if clock.extended_due_at is None or clock.extension_deadline is None:
        return ApplicationError("This kind of request cannot be extended.",
                                code="not_extendable", status_code=http.HTTP_409_CONFLICT)
    if now >= clock.extension_deadline:
        return ApplicationError(
            "The extension had to be decided and sent before the original due date.",
            code="extension_too_late", status_code=http.HTTP_409_CONFLICT,
            details={"deadline": clock.extension_deadline.isoformat()})
    return None


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
    now = timezone.now()
    refusal = extension_refusal(pr, now)
    if refusal is not None:
        raise refusal
    clock = compute_clock(regime=pr.regime, kind=pr.kind, received_at=pr.received_at,
                          holidays=holidays_of(pr.tenant))
    previous = pr.due_at
    pr.extended_at = now
    pr.extension_reason = reason
    pr.due_at = clock.extended_due_at or pr.due_at  # set: extension_refusal checked it
    pr.save(update_fields=["extended_at", "extension_reason", "due_at", "updated_at"])
    notify_subject(pr, "extended", {"reason": reason})
    audit.record(pr.tenant, "privacy.request_extended", actor, pr,
                 audit_details(pr, previous_due_at=previous.isoformat(),
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
    policy = find_kind(pr.kind)
    if pr.status == Status.IN_PROGRESS and policy is not None and policy.erases_subject:
        raise ApplicationError("An erasure under way cannot be rejected.",
                               code="erasure_in_progress", status_code=http.HTTP_409_CONFLICT)
    pr.rejection_reason = reason
    pr.save(update_fields=["rejection_reason", "updated_at"])
    notify_subject(pr, "rejected", {"reason": reason,
                                    "complaint": COMPLAINT_RIGHTS.get(pr.regime, "")})
    cancel_jobs(privacy_request=pr)
    return transition_privacy_request(pr, to=Status.REJECTED, actor=actor)


def fulfil_now(*, privacy_request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """Admin action: (re)start fulfilment of a verified or stalled request. A request not yet
    verified is refused: nothing is released or erased before verification. A request whose
    kind carries details, still waiting for them (a rectification the subject never
    completed in the portal), is closed as completed by staff, who made the change by other
    means; its outcome is recorded under the kind's name, as its fulfil function does."""
    with transaction.atomic():
        pr = lock_request(privacy_request)
        if pr.status not in {Status.VERIFIED, Status.IN_PROGRESS}:
            raise ApplicationError("Only a verified request can be fulfilled.",
                                   code="not_verified", status_code=http.HTTP_409_CONFLICT)
        policy = get_kind(pr.kind)
        if policy.carries_details and not pr.payload:
            transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
            pr.result = {**pr.result, pr.kind: {"note": "completed by staff"}}
            pr.save(update_fields=["result", "updated_at"])
            notify_subject(pr, "completed")
            transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)
        else:
            audit.record(pr.tenant, "privacy.fulfilment_requested", actor, pr,
                         audit_details(pr))
            dispatch_fulfilment(privacy_request=pr, actor=actor)
    pr.refresh_from_db()
    return pr


def resend(*, privacy_request: PrivacyRequest, actor: Any = None, origin: str = "") -> str:
    """Admin action: send again what the requester is waiting for: a fresh verification
    link, a fresh download link, or the acknowledgment. Returns what was sent."""
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
        elif pr.status == Status.COMPLETED and _produces_export(pr):
            reissue_download_link(privacy_request=pr, actor=actor)
            sent = "download"
        elif pr.is_open:
            notify_subject(pr, "received")
            sent = "acknowledgment"
        else:
            raise ApplicationError("Nothing to resend for this request.",
                                   code="nothing_to_resend", status_code=http.HTTP_409_CONFLICT)
        audit.record(pr.tenant, "privacy.resent", actor, pr, audit_details(pr, sent=sent))
    return sent


def _produces_export(pr: PrivacyRequest) -> bool:
    policy = find_kind(pr.kind)
    return policy is not None and policy.produces_export
