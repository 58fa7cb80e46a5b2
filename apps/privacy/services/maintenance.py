"""What beat runs for privacy requests: deadline reminders to tenant staff, and housekeeping
(expired export files, spent verification material, unverifiable requests), plus the replay
of erasures after a restore.

Request records (kept 24 months after they close, CCPA regulations §7101) and tombstones are
deleted by the retention app, under each tenant's policy (``closed_privacy_requests``,
``erasure_tombstones``): not here, so a longer policy is never cut short.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit import services as audit
from apps.core.subject_data import subject_data_stores
from apps.privacy.models import (
    ErasureTombstone,
    PortalSession,
    PrivacyRequest,
    SignedLinkUse,
    VerificationChallenge,
)
from apps.privacy.services.deadlines import due_state
from apps.privacy.services.erasure import erase_with_handler
from apps.privacy.services.export import delete_export_files
from apps.privacy.services.notifications import notify_staff
from apps.privacy.services.requests import (
    Status,
    at_risk_days,
    reject_privacy_request,
)
from apps.tenants.models import Tenant
from apps.tenants.services import tenant_setting

logger = logging.getLogger("privacy.maintenance")

UNVERIFIED_DAYS_SETTING = "privacy_unverified_reject_days"
DEFAULT_UNVERIFIED_DAYS = 30
REMINDER_INTERVAL = timedelta(hours=20)


def _open_requests() -> Any:
    # Crosses tenants on purpose: the beat job looks at every tenant's open requests.
    return PrivacyRequest.all_tenants.filter(status__in=list(PrivacyRequest.OPEN_STATUSES))


def send_deadline_reminders(*, now: datetime | None = None) -> dict[str, int]:
    """Email each tenant's owners and admins the open requests that are overdue, at risk, or
    whose CCPA acknowledgment is due; at most once per request every 20 hours. The message
    holds counts and admin links, never a subject."""
    now = now or timezone.now()
    by_tenant: dict[int, list[tuple[PrivacyRequest, str]]] = {}
    for pr in _open_requests().select_related("tenant").order_by("tenant_id", "due_at"):
        state = due_state(due_at=pr.due_at, now=now, is_open=True,
                          at_risk_days=at_risk_days(pr.tenant))
        ack_late = (pr.ack_due_at is not None and pr.acknowledged_at is None
                    and pr.ack_due_at - now <= timedelta(days=2))
        if state == "on_track" and not ack_late:
            continue
        if pr.last_reminder_at and now - pr.last_reminder_at < REMINDER_INTERVAL:
            continue
        by_tenant.setdefault(pr.tenant_id, []).append(
            (pr, "ack due" if state == "on_track" else state.replace("_", " ")))
    sent = Counter()
    for rows in by_tenant.values():
        tenant = rows[0][0].tenant
        with transaction.atomic():
            counts = Counter(state for _, state in rows)
            recipients = notify_staff(
                tenant, f"[{tenant.name}] privacy requests need attention",
                "privacy/email/staff_reminder.txt",
                {"rows": [(pr, state) for pr, state in rows], "counts": dict(counts),
                 "now": now})
            PrivacyRequest.objects.for_tenant(tenant).filter(
                pk__in=[pr.pk for pr, _ in rows]).update(last_reminder_at=now)
            audit.record(tenant, "privacy.reminder_sent", None, ("privacy.privacyrequest", ""),
                         {"requests": len(rows), "recipients": recipients,
                          "states": dict(counts)})
        sent["tenants"] += 1
        sent["requests"] += len(rows)
    return dict(sent)


def run_housekeeping(*, now: datetime | None = None) -> dict[str, int]:
    """Idempotent cleanup, every tenant (beat, hourly): export files 7 days after they were
    made (the retention app's daily ``exports`` run does the same, later in the day),
    portal requests never verified, spent verification material."""
    now = now or timezone.now()
    done: Counter[str] = Counter()
    # Crosses tenants on purpose: housekeeping is the system's own.
    for tenant in Tenant.objects.all():
        with transaction.atomic():
            done["export_files_deleted"] += delete_export_files(tenant=tenant, now=now)
        days = tenant_setting(tenant, UNVERIFIED_DAYS_SETTING, DEFAULT_UNVERIFIED_DAYS)
        stale = PrivacyRequest.objects.for_tenant(tenant).filter(
            status__in=[Status.RECEIVED, Status.VERIFYING],
            received_at__lt=now - timedelta(days=int(days or DEFAULT_UNVERIFIED_DAYS)),
            channel=PrivacyRequest.Channel.PORTAL)
        for pr in stale:
            reject_privacy_request(
                privacy_request=pr, reason="We could not verify your identity: the "
                "confirmation link we sent was not used.")
            done["unverified_rejected"] += 1
    # Spent or expired verification material, every tenant (all_tenants: housekeeping).
    done["challenges_deleted"] = VerificationChallenge.all_tenants.filter(
        Q(expires_at__lt=now - timedelta(days=1))).delete()[0]
    done["signed_links_pruned"] = SignedLinkUse.all_tenants.filter(expires_at__lt=now).delete()[0]
    done["sessions_deleted"] = PortalSession.all_tenants.filter(expires_at__lt=now).delete()[0]
    return dict(done)


def replay_erasures(*, tenant: Tenant | None = None, since: datetime | None = None
                    ) -> dict[str, int]:
    """After a database or model restore: run every store's erase again for each erased
    subject key (tombstones), oldest first; stores kept as proof the law requires are left
    alone. Idempotent. Returns rows removed per store."""
    tombstones = ErasureTombstone.all_tenants.all()  # an ops command: every tenant unless named
    if tenant is not None:
        tombstones = tombstones.for_tenant(tenant)
    if since is not None:
        tombstones = tombstones.filter(erased_at__gte=since)
    removed: Counter[str] = Counter()
    per_tenant: dict[int, Counter[str]] = {}
    seen: set[tuple[int, str]] = set()
    for tombstone in tombstones.select_related("tenant").order_by("erased_at", "pk"):
        key = (tombstone.tenant_id, tombstone.subject_key)
        if key in seen:
            continue
        seen.add(key)
        for handler in subject_data_stores():
            if handler.kept_as_proof:
                continue
            with transaction.atomic():
                count = erase_with_handler(handler, tombstone.tenant, tombstone.subject_key)
            removed[handler.name] += count
            per_tenant.setdefault(tombstone.tenant_id, Counter())[handler.name] += count
    for tenant_id, counts in per_tenant.items():
        audit.record(Tenant.objects.get(pk=tenant_id), "privacy.erasures_replayed", None,
                     ("privacy.erasuretombstone", ""),
                     {"subjects": sum(1 for t, _ in seen if t == tenant_id),
                      "removed": dict(counts)})
    removed["subjects"] = len(seen)
    return dict(removed)
