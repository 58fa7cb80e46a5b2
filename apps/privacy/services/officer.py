"""The privacy officer's actions (issue 17): approve or deny a request held for approval,
tick its manual steps, assign it, keep internal notes, and export the queue.

Every action locks the request, checks its state (a wrong one is a 409 ``ApplicationError``
with the current status in ``details``), writes its audit entry in the same transaction
and moves statuses only through :func:`~apps.privacy.services.lifecycle.transition_privacy_request`.
Whether a request is held for approval in the first place is decided in
:mod:`apps.privacy.services.gate`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from rest_framework import status as http

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.privacy.config import MAX_STEP_LABEL
from apps.privacy.models import ManualStep, PrivacyRequest, RequestNote
from apps.privacy.services.deadlines import days_left, due_state
from apps.privacy.services.fulfilment import dispatch_fulfilment
from apps.privacy.services.lifecycle import audit_details, lock_request, transition_privacy_request
from apps.privacy.services.requests import at_risk_days, reject_privacy_request
from apps.tenants.models import Membership, Tenant

Status = PrivacyRequest.Status

#: Before verification or while held: a step can still stop the request.
STEP_STATUSES = frozenset({Status.RECEIVED, Status.VERIFYING, Status.AWAITING_APPROVAL})
MAX_NOTE = 4000


def _user(actor: Any) -> Any:
    return actor if isinstance(actor, get_user_model()) else None


def _not_awaiting(pr: PrivacyRequest) -> ApplicationError:
    return ApplicationError(
        f"Only a request awaiting approval can be approved or denied; this one is "
        f"{pr.status}.", code="not_awaiting_approval", status_code=http.HTTP_409_CONFLICT,
        details={"status": pr.status})


def open_step_labels(privacy_request: PrivacyRequest) -> list[str]:
    return list(ManualStep.objects.for_tenant(privacy_request.tenant_id)
                .filter(privacy_request=privacy_request, done_at__isnull=True)
                .values_list("label", flat=True))


def approve_privacy_request(*, privacy_request: PrivacyRequest,
                            actor: Any = None) -> PrivacyRequest:
    """Approve a request held in ``awaiting_approval``: it becomes ``verified`` again and is
    fulfilled as any verified request is (at once, or by its job after commit). Refused
    (409) for any other status and while a manual step is unticked."""
    with transaction.atomic():
        pr = lock_request(privacy_request)
        if pr.status != Status.AWAITING_APPROVAL:
            raise _not_awaiting(pr)
        steps = open_step_labels(pr)
        if steps:
            raise ApplicationError(
                "Tick every manual step before approving.", code="manual_steps_open",
                status_code=http.HTTP_409_CONFLICT, details={"open_steps": steps})
        pr.approved_by = _user(actor)
        pr.save(update_fields=["approved_by", "updated_at"])
        audit.record(pr.tenant, "privacy.request_approved", actor, pr, audit_details(pr))
        transition_privacy_request(pr, to=Status.VERIFIED, actor=actor,
                                   details={"approved": True})
        dispatch_fulfilment(privacy_request=pr, actor=actor)
    pr.refresh_from_db()
    return pr


def deny_privacy_request(*, privacy_request: PrivacyRequest, reason: str,
                         actor: Any = None) -> PrivacyRequest:
    """Deny a request held in ``awaiting_approval``: it is rejected, and the reason (with
    the subject's right to complain) is emailed to the subject when there is an address.
    Nothing of it was fulfilled. A reason is required."""
    reason = (reason or "").strip()
    with transaction.atomic():
        pr = lock_request(privacy_request)
        if pr.status != Status.AWAITING_APPROVAL:
            raise _not_awaiting(pr)
        if not reason:
            raise ApplicationError("A denial needs a reason for the subject.",
                                   code="reason_required")
        audit.record(pr.tenant, "privacy.request_denied", actor, pr, audit_details(pr))
        pr = reject_privacy_request(privacy_request=pr, reason=reason, actor=actor)
    return pr


def assign_privacy_request(*, privacy_request: PrivacyRequest, assignee: Any,
                           actor: Any = None) -> PrivacyRequest:
    """Hand the request to a member of its tenant (``None``: nobody)."""
    with transaction.atomic():
        pr = lock_request(privacy_request)
        if assignee is not None and not Membership.objects.for_tenant(pr.tenant_id).filter(
                user_id=assignee.pk, user__is_active=True).exists():
            raise ApplicationError("Only a member of the tenant can be assigned.",
                                   code="not_a_member")
        pr.assignee = assignee
        pr.save(update_fields=["assignee", "updated_at"])
        audit.record(pr.tenant, "privacy.request_assigned", actor, pr,
                     audit_details(pr, assignee_id=assignee.pk if assignee else None))
    return pr


def add_request_note(*, privacy_request: PrivacyRequest, text: str,
                     author: Any = None) -> RequestNote:
    """An internal note (never shown to the subject)."""
    text = (text or "").strip()
    if not text or len(text) > MAX_NOTE:
        raise ApplicationError(f"A note has 1 to {MAX_NOTE} characters.", code="invalid_note")
    with transaction.atomic():
        pr = lock_request(privacy_request)
        note = RequestNote.objects.create(tenant_id=pr.tenant_id, privacy_request=pr,
                                          author=_user(author), text=text)
        audit.record(pr.tenant, "privacy.note_added", author, pr,
                     audit_details(pr, note_id=note.pk))
    return note


def add_manual_step(*, privacy_request: PrivacyRequest, label: str,
                    actor: Any = None) -> ManualStep:
    """Add a step to the checklist of a request not yet fulfilled (received, verifying or
    awaiting approval): the request then waits for approval until it is ticked."""
    label = (label or "").strip()
    if not label or len(label) > MAX_STEP_LABEL:
        raise ApplicationError(f"A step has 1 to {MAX_STEP_LABEL} characters.",
                               code="invalid_step")
    with transaction.atomic():
        pr = lock_request(privacy_request)
        if pr.status not in STEP_STATUSES:
            raise ApplicationError(
                "Steps can be added only before the request is fulfilled.",
                code="steps_closed", status_code=http.HTTP_409_CONFLICT,
                details={"status": pr.status})
        position = ManualStep.objects.for_tenant(pr.tenant_id).filter(
            privacy_request=pr).count()
        try:
            with transaction.atomic():
                step = ManualStep.objects.create(tenant_id=pr.tenant_id, privacy_request=pr,
                                                 label=label, position=position)
        except IntegrityError:
            raise ApplicationError("This request already has that step.", code="step_exists",
                                   status_code=http.HTTP_409_CONFLICT) from None
        audit.record(pr.tenant, "privacy.manual_step_added", actor, pr,
                     audit_details(pr, step_id=step.pk))
    return step


def set_manual_step(*, step: ManualStep, done: bool, actor: Any = None) -> ManualStep:
    """Tick (or untick) one step of a request not yet fulfilled."""
    with transaction.atomic():
        pr = lock_request(step.privacy_request)
        if pr.status not in STEP_STATUSES:
            raise ApplicationError("The request is past its manual steps.",
                                   code="steps_closed", status_code=http.HTTP_409_CONFLICT,
                                   details={"status": pr.status})
        locked = ManualStep.objects.for_tenant(pr.tenant_id).select_for_update().get(
            pk=step.pk, privacy_request=pr)
        if locked.is_done == done:
            return locked
        locked.done_at = timezone.now() if done else None
        locked.done_by = _user(actor) if done else None
        locked.save(update_fields=["done_at", "done_by", "updated_at"])
        audit.record(pr.tenant, "privacy.manual_step_done" if done
                     else "privacy.manual_step_reopened", actor, pr,
                     audit_details(pr, step_id=locked.pk))
    return locked


# --- The queue as CSV ----------------------------------------------------------------------

FILTER_NAMES = frozenset({"kind", "regime", "status", "channel", "due", "model_update_pending",
                          "assignee", "requires_input"})
CSV_COLUMNS = ["reference", "tenant", "kind", "regime", "channel", "status", "received_at",
               "due_at", "days_left", "due_state", "extended", "assignee", "open_steps",
               "verified_at", "approved_at", "completed_at", "rejected_at"]


def _cell(value: Any) -> str:
    text = "" if value is None else (value.isoformat() if hasattr(value, "isoformat")
                                     else str(value))
    # A spreadsheet runs a cell that starts like a formula (CSV injection).
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} and not (
        text[:1] == "-" and text[1:].isdigit()) else text


def export_queue_csv(*, queryset: QuerySet[PrivacyRequest], actor: Any,
                     filters: Mapping[str, str] | None = None) -> str:
    """The requests of ``queryset`` (already scoped to the actor's tenants and filtered as
    the queue shows them) as CSV: the short reference and the workflow columns, never the
    pseudonym, the contact, the payload or the result. One audit entry per tenant in it."""
    now = timezone.now()
    # ``all_tenants`` by the pks of the caller's scoped queryset: the counts below join
    # the steps without disturbing the caller's annotations.
    rows = list(PrivacyRequest.all_tenants.filter(pk__in=queryset.order_by().values("pk"))
                .select_related("tenant", "assignee")
                .annotate(open_steps=Count("manual_steps",
                                           filter=Q(manual_steps__done_at__isnull=True)))
                .order_by("due_at", "pk"))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    risk_days: dict[int, int] = {}
    for pr in rows:
        if pr.tenant_id not in risk_days:
            risk_days[pr.tenant_id] = at_risk_days(pr.tenant)
        writer.writerow([_cell(v) for v in (
            pr.reference[:8], pr.tenant.slug, pr.kind, pr.regime, pr.channel, pr.status,
            pr.received_at, pr.due_at, days_left(pr.due_at, now) if pr.is_open else "",
            due_state(due_at=pr.due_at, now=now, is_open=pr.is_open,
                      at_risk_days=risk_days[pr.tenant_id]),
            "yes" if pr.is_extended else "no",
            pr.assignee.get_username() if pr.assignee else "", pr.open_steps,
            pr.verified_at, pr.approved_at, pr.completed_at, pr.rejected_at)])
    # The queue's own filters only (a search term or a stray parameter is not recorded).
    shown = {k: str(v)[:100] for k, v in (filters or {}).items()
             if k.split("__")[0] in FILTER_NAMES}
    with transaction.atomic():
        for tenant in _tenants_of(rows):
            count = sum(1 for pr in rows if pr.tenant_id == tenant.pk)
            audit.record(tenant, "privacy.queue_exported", actor,
                         ("privacy.privacyrequest", ""),
                         {"rows": count, "filters": shown})
    return buffer.getvalue()


def _tenants_of(rows: Iterable[PrivacyRequest]) -> list[Tenant]:
    tenants = {pr.tenant_id: pr.tenant for pr in rows}
    return [tenants[k] for k in sorted(tenants)]
