"""Rectification (GDPR Art. 16 / CCPA correct): new consent decisions and level, and
deletion of chosen interactions from the subject's history, applied at once.

A rectification carries what to change (:func:`clean_rectification`, the kinds table's
details check). Made without details (the portal's form, a letter), it waits once verified
for the subject to make the changes in the portal's preference center or "my data"
(:func:`find_pending_rectification`, :func:`correct_subject_data`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.core.subject_data import Correction, NotApplicable, subject_data_stores
from apps.privacy.models import PrivacyRequest
from apps.privacy.services.lifecycle import (
    CONSENT_SOURCES,
    Status,
    lock_request,
    transition_privacy_request,
)
from apps.privacy.services.notifications import Contact, notify_subject
from apps.privacy.services.requests import create_privacy_request
from apps.tenants.models import Tenant

Kind = PrivacyRequest.Kind
DETAILS = frozenset({"consents", "level", "delete_events"})


def clean_rectification(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a rectification may change: ``consents`` (purpose key → bool), ``level`` and
    ``delete_events`` (at most 1000 event ids). Raises ``invalid_details``."""
    unknown = sorted(set(payload) - DETAILS)
    if unknown:
        raise ApplicationError("Unknown rectification details.", code="invalid_details",
                               details={"unknown": unknown, "allowed": sorted(DETAILS)})
    consents = payload.get("consents", {})
    if not isinstance(consents, Mapping) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in consents.items()):
        raise ApplicationError("'consents' maps purpose keys to true or false.",
                               code="invalid_details")
    level = payload.get("level")
    if level is not None and not isinstance(level, str):
        raise ApplicationError("'level' is a string.", code="invalid_details")
    if any("\x00" in key for key in consents) or (isinstance(level, str) and "\x00" in level):
        # PostgreSQL cannot store a NUL in the request's JSON; no purpose or level has one.
        raise ApplicationError("Details cannot hold NUL characters.", code="invalid_details")
    events = payload.get("delete_events", [])
    if (not isinstance(events, list) or len(events) > 1000
            or not all(isinstance(e, str) and 0 < len(e) <= 128 and "\x00" not in e
                       for e in events)):
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


def fulfil_rectification(*, privacy_request: PrivacyRequest, actor: Any = None) -> None:
    """The rectification kind's fulfil function (kinds table): apply the details the request
    carries; without any, it waits for the subject's changes in the portal."""
    if privacy_request.payload:
        apply_rectification(privacy_request=privacy_request, actor=actor)


def apply_rectification(*, privacy_request: PrivacyRequest, actor: Any = None,
                        payload: dict[str, Any] | None = None) -> PrivacyRequest:
    """Art. 16 / CCPA correct: every declared store that can be corrected applies its part
    of the details (consent decisions and level, recorded in the ledger as the subject's
    own; deletion of the chosen interactions), and each change is audited."""
    pr = privacy_request
    correction = Correction(changes=payload if payload is not None else dict(pr.payload),
                            source=CONSENT_SOURCES[pr.channel], actor=actor)
    if pr.status == Status.VERIFIED:
        transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
    parts: list[dict[str, Any]] = []
    for store in subject_data_stores():
        if isinstance(store.rectify, NotApplicable):
            continue
        part = store.rectify(pr.tenant, pr.subject_key, correction)
        if part:
            parts.append(part)
            audit.record(pr.tenant, "privacy.store_rectified", actor, pr,
                         {"reference": pr.reference[:8], "store": store.name, **part})
    outcome: dict[str, Any] = {}
    for part in reversed(parts):  # the subject's choices first, as the portal asked for them
        outcome.update(part)
    pr.result = {**pr.result, "rectification": outcome}
    pr.save(update_fields=["result", "updated_at"])
    notify_subject(pr, "completed", {"applied": outcome})
    return transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)


def find_pending_rectification(*, tenant: Tenant, subject_key: str,
                               reference: str) -> PrivacyRequest | None:
    """The subject's verified rectification request ``reference``, waiting for their
    changes; ``None`` for anything else (another subject's, closed, unknown)."""
    if not reference or len(reference) > 32:
        return None
    return (PrivacyRequest.objects.for_tenant(tenant).select_related("tenant")
            .filter(reference=reference, subject_key=subject_key, kind=Kind.RECTIFICATION,
                    status=Status.VERIFIED).first())


def submit_rectification(*, privacy_request: PrivacyRequest, changes: Mapping[str, Any],
                         actor: Any = "subject") -> PrivacyRequest:
    """The subject's changes for their pending rectification (``None`` values: unchanged),
    checked, then applied if the request still waits for them."""
    cleaned = clean_rectification({k: v for k, v in changes.items() if v is not None})
    with transaction.atomic():
        locked = lock_request(privacy_request)
        if locked.status == Status.VERIFIED:
            apply_rectification(privacy_request=locked, actor=actor, payload=cleaned)
    return locked


def correct_subject_data(*, tenant: Tenant, subject_key: str, changes: Mapping[str, Any],
                         contact: Contact | None, pending: PrivacyRequest | None = None,
                         origin: str = "") -> PrivacyRequest:
    """A verified portal subject's corrections: the details of their ``pending``
    rectification, or a new rectification request, verified by their portal session and
    applied at once."""
    if pending is not None:
        return submit_rectification(privacy_request=pending, changes=changes)
    return create_privacy_request(
        tenant=tenant, kind=Kind.RECTIFICATION, regime=tenant.default_regime,
        channel=PrivacyRequest.Channel.PORTAL, subject_key=subject_key, contact=contact,
        actor="subject", payload=changes,
        verification=PrivacyRequest.Verification.PORTAL_SESSION, origin=origin)
