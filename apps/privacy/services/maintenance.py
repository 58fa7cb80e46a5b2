"""What beat runs for privacy requests: deadline reminders to tenant staff, and housekeeping
(expired export files, spent verification material, unverifiable requests, tombstones the
store outside the database lacks), plus the replay of erasures after a restore.

Request records (kept 24 months after they close, CCPA regulations §7101) and tombstones are
deleted by the retention app, under each tenant's policy (``closed_privacy_requests``,
``erasure_tombstones``): not here, so a longer policy is never cut short.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit import services as audit
from apps.core.subject_data import retention_period, subject_data_stores
from apps.privacy import tenant_settings as privacy_settings
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
from apps.privacy.services.receipts import reconcile_model_receipts
from apps.privacy.services.requests import (
    Status,
    at_risk_days,
    reject_privacy_request,
)
from apps.privacy.services.tombstones import (
    TombstoneRecord,
    append_tombstones,
    backfill_tombstone_store,
    prune_tombstone_store,
    read_tombstones,
    record_of,
)
from apps.tenants.models import Tenant
from apps.tenants.services import setting_value
from apps.webhooks import services as webhooks

logger = logging.getLogger("privacy.maintenance")

UNVERIFIED_DAYS_SETTING = privacy_settings.UNVERIFIED_REJECT_DAYS.name  # tenant_settings.py
DEFAULT_UNVERIFIED_DAYS = privacy_settings.UNVERIFIED_REJECT_DAYS.default
REMINDER_INTERVAL = timedelta(hours=20)
TOMBSTONE_CATEGORY = "erasure_tombstones"  # the retention category of the tombstones


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


def announce_overdue_requests(*, now: datetime | None = None) -> int:
    """Queue ``privacy_request.overdue`` for every open request past its due moment: once
    per request and due date (an extended request that runs late again is announced
    again). Hourly, with the housekeeping; returns the deliveries queued."""
    now = now or timezone.now()
    queued = 0
    for pr in _open_requests().filter(due_at__lt=now).order_by("tenant_id", "pk"):
        with transaction.atomic():
            queued += webhooks.emit_webhook_event(
                tenant_id=pr.tenant_id, event_type=webhooks.EventType.PRIVACY_REQUEST_OVERDUE,
                dedupe_key=f"privacy_request.overdue:{pr.pk}:{pr.due_at.isoformat()}",
                data={"id": pr.pk, "kind": pr.kind, "regime": pr.regime, "status": pr.status,
                      "due_at": pr.due_at.isoformat()})
    return queued


def run_housekeeping(*, now: datetime | None = None) -> dict[str, int]:
    """Idempotent cleanup, every tenant (beat, hourly): export files 7 days after they were
    made (the retention app's daily ``exports`` run does the same, later in the day),
    portal requests never verified, spent verification material; and erasure receipts
    still pending a model update are checked again (``reconcile_model_receipts``)."""
    now = now or timezone.now()
    done: Counter[str] = Counter()
    # Crosses tenants on purpose: housekeeping is the system's own.
    for tenant in Tenant.objects.all():
        with transaction.atomic():
            done["export_files_deleted"] += delete_export_files(tenant=tenant, now=now)
        days = setting_value(tenant, privacy_settings.UNVERIFIED_REJECT_DAYS)
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
    # A tombstone whose copy outside the database failed to be written gets it now; records
    # past the tenant's tombstone period leave the store as the rows leave the database.
    done["tombstones_stored"] = backfill_tombstone_store()
    for tenant in Tenant.objects.all():  # every tenant, as above
        cutoff = _tombstone_cutoff(tenant, now)
        if cutoff is not None:
            done["tombstone_records_expired"] += prune_tombstone_store(tenant, cutoff)
    done["overdue_announced"] = announce_overdue_requests(now=now)
    # Erasure receipts still saying "model update pending": the backstop for an activation
    # whose listener's task was lost (a crash right after the commit).
    receipts = reconcile_model_receipts()
    done["receipts_final"] = receipts["final"]
    done["receipts_pending"] = receipts["pending"]
    return dict(done)


def _tombstone_cutoff(tenant: Tenant, now: datetime) -> datetime | None:
    period = retention_period(tenant, TOMBSTONE_CATEGORY)
    return now - period if period is not None else None


@dataclass
class ReplayReport:
    """What ``replay_erasures`` did (the command prints it)."""

    source: str
    subjects: int = 0
    removed: Counter[str] = field(default_factory=Counter)  # rows per store
    tombstones_restored: int = 0  # rows a restore had lost, re-created from the store
    tombstones_stored: int = 0  # records the store lacked, written from the rows
    unmatched: int = 0  # store records of a tenant this database does not hold
    expired: int = 0  # records past the tenant's tombstone period (retention prunes them)
    erased: list[tuple[Tenant, str]] = field(default_factory=list)  # (tenant, subject key)


def _records_from_database(tenant: Tenant | None) -> list[TombstoneRecord]:
    rows = ErasureTombstone.all_tenants.all()  # an ops command: every tenant unless named
    if tenant is not None:
        rows = rows.for_tenant(tenant)
    return [record_of(t) for t in
            rows.select_related("tenant", "privacy_request").order_by("erased_at", "pk")]


def _restore_tombstone_row(tenant: Tenant, record: TombstoneRecord) -> bool:
    """Re-create the row a restore lost; linked to its request when the restored database
    still holds it. Returns whether a row was created."""
    rows = ErasureTombstone.objects.for_tenant(tenant).filter(subject_key=record.subject_key)
    request = (PrivacyRequest.objects.for_tenant(tenant)
               .filter(reference=record.request_reference).first()
               if record.request_reference else None)
    if rows.filter(erased_at=record.erased).exists() or (
            request is not None and rows.filter(privacy_request=request).exists()):
        return False
    ErasureTombstone.objects.for_tenant(tenant).create(
        tenant=tenant, subject_key=record.subject_key, privacy_request=request,
        erased_at=record.erased)
    return True


def replay_erasures(*, tenant: Tenant | None = None, since: datetime | None = None,
                    source: str = "store") -> ReplayReport:
    """After a database or model restore: run every store's erase again for each erased
    subject key, oldest first; stores kept as proof the law requires are left alone.

    ``source="store"`` (the default) reads the tombstone store outside the database
    (:mod:`.tombstones`), which a restore of an older dump does not roll back, and
    re-creates the tombstone rows the restore lost. ``source="database"`` reads the rows,
    as before the store existed, and writes any the store lacks into it. Idempotent."""
    if source not in ("store", "database"):
        raise ValueError(f"unknown tombstone source {source!r}")
    report = ReplayReport(source=source)
    if source == "database":
        records = _records_from_database(tenant)
        report.tombstones_stored = append_tombstones(records)
    else:
        records = read_tombstones(tenant=tenant)
    if since is not None:
        records = [r for r in records if r.erased >= since]
    tenants = {t.pk: t for t in Tenant.objects.filter(  # the system's own: named by id
        pk__in={r.tenant_id for r in records})}
    per_tenant: dict[int, Counter[str]] = {}
    subjects: dict[int, set[str]] = {}
    cutoffs: dict[int, datetime | None] = {}
    now = timezone.now()
    for record in records:
        owner = tenants.get(record.tenant_id)
        if owner is None or not record.belongs_to(owner):
            report.unmatched += 1
            continue
        cutoff = cutoffs.setdefault(owner.pk, _tombstone_cutoff(owner, now))
        if cutoff is not None and record.erased < cutoff:
            report.expired += 1  # past the tenant's tombstone period: as if deleted
            continue
        if source == "store":
            with transaction.atomic():
                report.tombstones_restored += _restore_tombstone_row(owner, record)
        if record.subject_key in subjects.setdefault(owner.pk, set()):
            continue
        subjects[owner.pk].add(record.subject_key)
        report.erased.append((owner, record.subject_key))
        for handler in subject_data_stores():
            if handler.kept_as_proof:
                continue
            with transaction.atomic():
                count = erase_with_handler(handler, owner, record.subject_key)
            report.removed[handler.name] += count
            per_tenant.setdefault(owner.pk, Counter())[handler.name] += count
    for tenant_id, keys in subjects.items():
        audit.record(tenants[tenant_id], "privacy.erasures_replayed", None,
                     ("privacy.erasuretombstone", ""),
                     {"subjects": len(keys), "source": source,
                      "removed": dict(per_tenant.get(tenant_id, {}))})
    report.subjects = len(report.erased)
    return report
