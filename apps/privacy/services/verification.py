"""Proving who a requester is, before anything is released or erased.

* **Emailed one-time link** (email identifiers): a 192-bit token, stored as SHA-256, valid
  for :data:`TOKEN_TTL` (at most 60 minutes), used once, and dead after
  :data:`MAX_ATTEMPTS` wrong tries against its request.
* **Tenant-signed link** ``/privacy/<slug>/start?token=...``: the tenant's backend vouches
  for a user who is logged in on its site. The token is ``<payload>.<signature>``, both
  base64url without padding; the payload is JSON ``{"sub": <subject id>, "exp": <unix
  seconds>, "jti": <random, >= 128 bits>, "email": <optional>}`` and the signature is
  HMAC-SHA256 of the payload's base64url text under the tenant's portal signing secret.
  A link lives at most :data:`SIGNED_LINK_MAX_TTL` and works once (its ``jti`` is recorded).
* **Portal session**: either proof opens a short session (cookie of 256 random bits, stored
  hashed) for the preference center, "my data" and further requests.

Whichever proof it is, :func:`verify_privacy_request` records it and hands the request to
its kind's fulfilment (:func:`~apps.privacy.services.fulfilment.dispatch_fulfilment`).
Kinds the table declares without verification (CCPA opt-out and limit) are verified as
``not_required`` when they are made.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.privacy.models import (
    PortalSession,
    PortalSettings,
    PrivacyRequest,
    SignedLinkUse,
    VerificationChallenge,
)
from apps.privacy.services.fulfilment import dispatch_fulfilment
from apps.privacy.services.gate import hold_for_approval
from apps.privacy.services.lifecycle import lock_request, transition_privacy_request
from apps.privacy.services.notifications import (
    Contact,
    encrypt_contact,
    notify_subject,
    verify_url,
)
from apps.tenants.crypto import decrypt_secret, encrypt_secret
from apps.tenants.models import Tenant

Status = PrivacyRequest.Status
Verification = PrivacyRequest.Verification

TOKEN_TTL = timedelta(minutes=60)
MAX_ATTEMPTS = 5
SIGNED_LINK_MAX_TTL = timedelta(minutes=60)
CLOCK_SKEW = timedelta(seconds=60)
SESSION_TTL = timedelta(minutes=30)
MIN_JTI_LENGTH = 22  # base64url characters: 132 bits


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def verify_privacy_request(*, privacy_request: PrivacyRequest, method: str,
                           actor: Any = None) -> PrivacyRequest:
    """Mark the requester's identity as established and start fulfilment (the kind's fulfil
    function: at once, in this transaction, or by a job after commit), unless the tenant
    holds its kind for approval: then it waits in ``awaiting_approval`` and nothing runs
    (:func:`~apps.privacy.services.gate.hold_for_approval`). Idempotent: an already
    verified (or later) request is returned unchanged."""
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
        if not hold_for_approval(privacy_request=pr, actor=actor):
            dispatch_fulfilment(privacy_request=pr, actor=actor)
    return pr


# --- Emailed one-time links ----------------------------------------------------------------


def issue_challenge(*, privacy_request: PrivacyRequest) -> str:
    """A fresh one-time token for the request (returned once; only its hash is kept)."""
    token = secrets.token_urlsafe(24)
    VerificationChallenge.objects.create(
        tenant_id=privacy_request.tenant_id, privacy_request=privacy_request,
        token_hash=_hash(token), expires_at=timezone.now() + TOKEN_TTL)
    return token


def start_email_verification(*, privacy_request: PrivacyRequest, actor: Any = None) -> None:
    """Email the requester a one-time link (the message also acknowledges receipt, CCPA
    §7021(a)) and wait in ``verifying``. Runs in the caller's transaction."""
    pr = privacy_request
    if not pr.contact_is_email:
        raise ApplicationError("Email verification needs an email address.",
                               code="no_contact")
    if pr.status == Status.RECEIVED:
        transition_privacy_request(pr, to=Status.VERIFYING, actor=actor)
    token = issue_challenge(privacy_request=pr)
    sent = notify_subject(pr, "verify", {"verify_url": verify_url(pr, token),
                                         "ttl_minutes": int(TOKEN_TTL.total_seconds() // 60)})
    if sent and pr.acknowledged_at is None:
        pr.acknowledged_at = timezone.now()
        pr.save(update_fields=["acknowledged_at", "updated_at"])


def _active_challenges(pr: PrivacyRequest) -> list[VerificationChallenge]:
    now = timezone.now()
    return list(VerificationChallenge.objects.for_tenant(pr.tenant_id)
                .select_for_update()
                .filter(privacy_request=pr, used_at__isnull=True, expires_at__gt=now,
                        attempts__lt=MAX_ATTEMPTS))


def verify_with_token(*, tenant: Tenant, reference: str, token: str) -> PrivacyRequest | None:
    """Check an emailed token. ``None`` for every failure alike (unknown request, wrong,
    expired, used or exhausted token), so the answer tells an attacker nothing. A wrong
    token costs each live challenge of that request one of its attempts."""
    with transaction.atomic():
        pr = (PrivacyRequest.objects.for_tenant(tenant).select_for_update(of=("self",))
              .select_related("tenant").filter(reference=reference).first())
        if pr is None or not token:
            return None
        if pr.status not in {Status.RECEIVED, Status.VERIFYING}:
            return None
        digest = _hash(token)
        challenges = _active_challenges(pr)
        match = next((c for c in challenges if hmac.compare_digest(c.token_hash, digest)), None)
        if match is None:
            for challenge in challenges:
                challenge.attempts += 1
                challenge.save(update_fields=["attempts", "updated_at"])
            audit.record(tenant, "privacy.verification_failed", "subject", pr,
                         {"reference": pr.reference[:8]})
            return None
        match.used_at = timezone.now()
        match.save(update_fields=["used_at", "updated_at"])
        verify_privacy_request(privacy_request=pr, method=Verification.EMAIL_LINK,
                               actor="subject")
    pr.refresh_from_db()
    return pr


# --- Tenant-signed links -------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def get_signing_secret(*, tenant: Tenant) -> bytes:
    """The tenant's portal signing secret, created on first use."""
    settings_row = PortalSettings.objects.for_tenant(tenant).first()
    if settings_row is None:
        with transaction.atomic():
            PortalSettings.objects.bulk_create(
                [PortalSettings(tenant=tenant, rotated_at=timezone.now(),
                                signing_secret_ciphertext=encrypt_secret(
                                    secrets.token_bytes(32)))],
                ignore_conflicts=True)
        settings_row = PortalSettings.objects.for_tenant(tenant).get()
    return decrypt_secret(settings_row.signing_secret_ciphertext)


@transaction.atomic
def rotate_signing_secret(*, tenant: Tenant, actor: Any = None) -> bytes:
    """A new signing secret; links signed with the old one stop working at once."""
    secret = secrets.token_bytes(32)
    PortalSettings.objects.for_tenant(tenant).update_or_create(
        tenant=tenant, defaults={"signing_secret_ciphertext": encrypt_secret(secret),
                                 "rotated_at": timezone.now()})
    audit.record(tenant, "privacy.signing_secret_rotated", actor, ("privacy.portalsettings", ""))
    return secret


def sign_portal_token(*, tenant: Tenant, subject: str, ttl: timedelta = timedelta(minutes=15),
                      email: str = "", secret: bytes | None = None) -> str:
    """What a tenant's backend does to send a logged-in user to the portal (reference
    implementation; any language can do the same with HMAC-SHA256)."""
    payload: dict[str, Any] = {"sub": subject, "exp": int(time.time() + ttl.total_seconds()),
                               "jti": secrets.token_urlsafe(18)}
    if email:
        payload["email"] = email
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    key = secret if secret is not None else get_signing_secret(tenant=tenant)
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


@dataclass(frozen=True)
class SignedSubject:
    subject: str
    email: str


INVALID_LINK = "This link is not valid or has expired."


def redeem_signed_token(*, tenant: Tenant, token: str) -> SignedSubject:
    """Check a tenant-signed token and spend it. Raises ``invalid_link`` (one message for
    every failure) when the signature, expiry, lifetime or single use does not hold."""
    def refuse() -> ApplicationError:
        return ApplicationError(INVALID_LINK, code="invalid_link")

    body, _, signature = (token or "").partition(".")
    if not body or not signature or len(token) > 4096:
        raise refuse()
    secret = get_signing_secret(tenant=tenant)
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        raise refuse()
    try:
        claims = json.loads(_unb64(body))
    except (ValueError, binascii.Error) as exc:
        raise refuse() from exc
    if not isinstance(claims, dict):
        raise refuse()
    subject, exp, jti = claims.get("sub"), claims.get("exp"), claims.get("jti")
    email = claims.get("email") or ""
    if (not isinstance(subject, str) or not subject.strip() or not isinstance(jti, str)
            or len(jti) < MIN_JTI_LENGTH or not isinstance(exp, int | float)
            or not isinstance(email, str)):
        raise refuse()
    now = timezone.now()
    try:
        expires = datetime.fromtimestamp(exp, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise refuse() from exc
    if expires <= now or expires > now + SIGNED_LINK_MAX_TTL + CLOCK_SKEW:
        raise refuse()
    try:
        with transaction.atomic():
            SignedLinkUse.objects.create(tenant=tenant, jti_hash=_hash(jti), expires_at=expires)
    except IntegrityError as exc:
        raise refuse() from exc
    return SignedSubject(subject=subject.strip(), email=email.strip())


# --- Portal sessions -----------------------------------------------------------------------


def open_portal_session(*, tenant: Tenant, subject_key: str, method: str,
                        contact: Contact | None = None) -> str:
    """Start a verified portal session; returns the cookie value (shown once)."""
    raw = secrets.token_urlsafe(32)
    PortalSession.objects.create(
        tenant=tenant, token_hash=_hash(raw), subject_key=subject_key,
        contact_ciphertext=encrypt_contact(contact) if contact else b"",
        contact_is_email=bool(contact and contact.email), verification_method=method,
        expires_at=timezone.now() + SESSION_TTL)
    return raw


def get_portal_session(*, tenant: Tenant, raw: str | None) -> PortalSession | None:
    if not raw or len(raw) > 100:
        return None
    return (PortalSession.objects.for_tenant(tenant)
            .filter(token_hash=_hash(raw), expires_at__gt=timezone.now()).first())


def close_portal_session(*, tenant: Tenant, raw: str | None) -> None:
    if raw:
        PortalSession.objects.for_tenant(tenant).filter(token_hash=_hash(raw)).delete()


def verify_with_session(*, privacy_request: PrivacyRequest, session: PortalSession,
                        actor: Any = "subject") -> PrivacyRequest:
    """A request made inside a verified session for the same subject is verified."""
    with transaction.atomic():
        pr = lock_request(privacy_request)
        if pr.subject_key != session.subject_key or session.tenant_id != pr.tenant_id:
            raise ApplicationError("Not your request.", code="not_found", status_code=404)
    return verify_privacy_request(privacy_request=pr, method=Verification.PORTAL_SESSION,
                                  actor=actor)
