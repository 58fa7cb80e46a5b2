"""The officer's approval gate (issue 17): where a verified request stops before anything
is released, erased or changed, when the tenant asks for it.

A verified request waits in ``awaiting_approval`` when its kind is in the tenant's
``privacy_approval_kinds``, when its kind has configured manual steps
(``privacy_manual_steps``: the checklist is attached here), or when an officer added a step
to it before it was verified (:mod:`apps.privacy.config`). Approval and denial are in
:mod:`apps.privacy.services.officer`.
"""

from __future__ import annotations

from typing import Any

from apps.privacy import config
from apps.privacy.models import ManualStep, PrivacyRequest
from apps.privacy.services.lifecycle import transition_privacy_request
from apps.privacy.services.notifications import notify_staff

Status = PrivacyRequest.Status


def hold_for_approval(*, privacy_request: PrivacyRequest, actor: Any = None) -> bool:
    """Called with a (locked) request that was just verified, inside its transaction: when
    the gate applies, attach the kind's manual steps, move it to ``awaiting_approval``, tell
    the tenant's staff, and return True (the caller then starts no fulfilment)."""
    pr = privacy_request
    labels = config.manual_steps(pr.tenant, pr.kind)
    has_steps = ManualStep.objects.for_tenant(pr.tenant_id).filter(
        privacy_request=pr).exists()
    if not (labels or has_steps or config.needs_approval(pr.tenant, pr.kind)):
        return False
    if labels:
        start = ManualStep.objects.for_tenant(pr.tenant_id).filter(privacy_request=pr).count()
        ManualStep.objects.bulk_create(
            [ManualStep(tenant_id=pr.tenant_id, privacy_request=pr, label=label,
                        position=start + i) for i, label in enumerate(labels)],
            ignore_conflicts=True)
    open_steps = ManualStep.objects.for_tenant(pr.tenant_id).filter(
        privacy_request=pr, done_at__isnull=True).count()
    transition_privacy_request(pr, to=Status.AWAITING_APPROVAL, actor=actor,
                               details={"manual_steps": open_steps})
    notify_staff(pr.tenant, f"A privacy request awaits approval ({pr.reference[:8]})",
                 "privacy/email/staff_approval.txt",
                 {"privacy_request": pr, "open_steps": open_steps})
    return True
