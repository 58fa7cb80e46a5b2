"""The one way to write the domain audit trail (DESIGN "Audit").

``record`` runs in the caller's transaction: the operation and its audit entry commit or
roll back together.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from apps.audit.models import AuditChainHead, AuditChainVerification, AuditEvent, SubjectAuditToken
from apps.tenants.models import ApiKey, Tenant

GENESIS_HASH = "0" * 64

# Keys that would carry a raw identifier. ``record`` refuses them so a careless caller
# fails in tests instead of leaking into an append-only log.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {"email", "subject", "external_id", "subject_id", "user_id", "ip", "ip_address",
     "user_agent", "phone", "name", "subject_key"}
)


def _actor(actor: Any) -> tuple[str, str]:
    if actor is None:
        return "system", ""
    if isinstance(actor, ApiKey):
        return "api_key", str(actor.pk)
    api_key = getattr(actor, "api_key", None)  # ApiKeyPrincipal
    if isinstance(api_key, ApiKey):
        return "api_key", str(api_key.pk)
    if isinstance(actor, str):  # "subject" (portal), "retention", ...
        return actor, ""
    return "user", str(getattr(actor, "pk", ""))


def _target(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, models.Model):
        return target._meta.label_lower, str(target.pk)
    if isinstance(target, tuple):
        return str(target[0]), str(target[1])
    return str(target), ""


def _check_details(details: dict[str, Any]) -> None:
    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if str(key).lower() in FORBIDDEN_DETAIL_KEYS:
                    raise ValueError(f"audit details may not carry '{key}' (raw identifier)")
                walk(inner)
        elif isinstance(value, list | tuple):
            for inner in value:
                walk(inner)

    walk(details)


def compute_entry_hash(entry: AuditEvent) -> str:
    payload = {
        "tenant": entry.tenant_id,
        "sequence": entry.sequence,
        "occurred_at": entry.occurred_at.isoformat(),
        "action": entry.action,
        "actor": [entry.actor_type, entry.actor_id],
        "target": [entry.target_type, entry.target_id],
        "subject_token": entry.subject_token,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def subject_token_for(*, tenant: Tenant, subject_key: str) -> str:
    token = (
        SubjectAuditToken.objects.for_tenant(tenant)
        .filter(subject_key=subject_key)
        .values_list("token", flat=True)
        .first()
    )
    if token is None:
        SubjectAuditToken.objects.bulk_create(
            [SubjectAuditToken(tenant=tenant, subject_key=subject_key,
                               token=secrets.token_hex(16))],
            ignore_conflicts=True,
        )
        token = (
            SubjectAuditToken.objects.for_tenant(tenant)
            .filter(subject_key=subject_key)
            .values_list("token", flat=True)
            .get()
        )
    return token


@transaction.atomic
def record(
    tenant: Tenant,
    action: str,
    actor: Any = None,
    target: Any = None,
    details: dict[str, Any] | None = None,
    *,
    subject_key: str | None = None,
) -> AuditEvent:
    """Append one entry to the tenant's chain.

    ``actor``: a user, an API key (or its principal), a role string such as ``"subject"``,
    or ``None`` for the system. ``target``: a model instance, a ``(type, id)`` pair or a
    label. ``subject_key`` is replaced by the subject's erasable token.
    """
    details = details or {}
    _check_details(details)
    heads = AuditChainHead.objects.for_tenant(tenant)
    heads.get_or_create(tenant=tenant, defaults={"last_sequence": 0,
                                                 "last_hash": GENESIS_HASH})
    head = heads.select_for_update().get()
    actor_type, actor_id = _actor(actor)
    target_type, target_id = _target(target)
    entry = AuditEvent(
        tenant=tenant,
        sequence=head.last_sequence + 1,
        occurred_at=timezone.now(),
        action=action,
        actor_type=actor_type,
        actor_id=actor_id,
        target_type=target_type,
        target_id=target_id,
        subject_token=subject_token_for(tenant=tenant, subject_key=subject_key)
        if subject_key else "",
        details=json.loads(json.dumps(details, default=str)),  # what the DB will give back
        prev_hash=head.last_hash,
    )
    entry.entry_hash = compute_entry_hash(entry)
    entry.save()
    head.last_sequence = entry.sequence
    head.last_hash = entry.entry_hash
    head.save(update_fields=["last_sequence", "last_hash"])
    return entry



def record_subject_data_viewed(*, tenant: Tenant, user: Any, target: Any, model: str,
                               rows_shown: int, subject_key: str | None = None,
                               **signal: Any) -> AuditEvent:
    """A member opened subject data in the admin (``apps.tenants.signals``): one entry per
    tenant for a list page, one per row for a detail page; it names the model and the row,
    never a raw identifier."""
    return record(tenant, "admin.subject_data_viewed", user, target,
                  {"model": model, "rows_shown": rows_shown}, subject_key=subject_key)

def forget_subject_token(*, tenant: Tenant, subject_key: str) -> int:
    """Erasure step: unlink the subject from every audit entry about them."""
    deleted, _ = SubjectAuditToken.objects.for_tenant(tenant).filter(
        subject_key=subject_key).delete()
    return deleted


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    checked_entries: int
    first_broken_sequence: int | None = None
    problem: str = ""


def _entries(tenant: Tenant) -> Iterator[AuditEvent]:
    return AuditEvent.objects.for_tenant(tenant).order_by("sequence").iterator(chunk_size=2000)


def verify_chain(*, tenant: Tenant) -> ChainReport:
    """Walk the chain: each entry's hash must match its content, link to the previous
    entry's hash, and carry the next sequence number; the head must match the last one.
    Entries pruned by retention are skipped from the head's checkpoint on."""
    head = AuditChainHead.objects.for_tenant(tenant).first()
    pruned = head.pruned_through_sequence if head else 0
    expected_prev = head.pruned_through_hash if head and pruned else GENESIS_HASH
    expected_seq = pruned + 1
    checked = 0
    for entry in _entries(tenant):
        if entry.sequence != expected_seq:
            return ChainReport(False, checked, expected_seq,
                               f"entry #{expected_seq} is missing (next found: #{entry.sequence})")
        if entry.prev_hash != expected_prev:
            return ChainReport(False, checked, entry.sequence,
                               f"entry #{entry.sequence} does not link to entry "
                               f"#{entry.sequence - 1}")
        if compute_entry_hash(entry) != entry.entry_hash:
            return ChainReport(False, checked, entry.sequence,
                               f"entry #{entry.sequence} was altered (hash mismatch)")
        expected_prev = entry.entry_hash
        expected_seq += 1
        checked += 1
    last_sequence = head.last_sequence if head else 0
    if last_sequence != expected_seq - 1:
        return ChainReport(False, checked, expected_seq,
                           f"entries #{expected_seq}..#{last_sequence} are missing (tail deleted)")
    if head and last_sequence and head.last_hash != expected_prev:
        return ChainReport(False, checked, last_sequence,
                           f"entry #{last_sequence} does not match the head")
    return ChainReport(True, checked)


def prune_audit_events(*, tenant: Tenant, before: datetime, batch_size: int = 10_000) -> int:
    """Retention: delete entries that occurred before ``before``, oldest first, in batches,
    moving the head's checkpoint so the remaining chain still verifies. The newest entry is
    never pruned (it anchors the chain). Returns the number of entries deleted."""
    deleted = 0
    while True:
        with transaction.atomic():
            head = AuditChainHead.objects.for_tenant(tenant).select_for_update().first()
            if head is None:
                return deleted
            batch = list(
                AuditEvent.objects.for_tenant(tenant)
                .filter(occurred_at__lt=before, sequence__lt=head.last_sequence)
                .order_by("sequence")
                .values_list("sequence", "entry_hash")[:batch_size]
            )
            if not batch:
                return deleted
            last_sequence, last_hash = batch[-1]
            AuditEvent.objects.for_tenant(tenant).filter(
                sequence__lte=last_sequence, occurred_at__lt=before).delete()
            head.pruned_through_sequence = last_sequence
            head.pruned_through_hash = last_hash
            head.save(update_fields=["pruned_through_sequence", "pruned_through_hash"])
            deleted += len(batch)


def prune_audit_events_batch(*, tenant: Tenant, cutoff: datetime,
                             batch_size: int) -> tuple[int, bool]:
    """Retention: prune the oldest ``batch_size`` or so entries older than ``cutoff``;
    returns ``(deleted, done)``. :func:`prune_audit_events` deletes by time; bounding its
    ``before`` by the time of the next entry past the batch keeps one transaction to about
    one batch (entries sharing a timestamp may make it larger)."""
    old = AuditEvent.objects.for_tenant(tenant).filter(occurred_at__lt=cutoff)
    first = old.order_by("sequence").values_list("occurred_at", flat=True).first()
    boundary = list(old.order_by("sequence").values_list("occurred_at", flat=True)
                    [batch_size:batch_size + 1])
    last_batch = not boundary or first is None or boundary[0] <= first
    before = cutoff if last_batch else min(cutoff, boundary[0])
    deleted = prune_audit_events(tenant=tenant, before=before, batch_size=batch_size)
    return deleted, last_batch or deleted == 0


def request_chain_verification(*, tenant: Tenant, requested_by: Any = None) -> (
        AuditChainVerification):
    """Record a verification run as a durable job and enqueue it after commit."""
    from apps.core.jobs import enqueue_job

    with transaction.atomic():
        job = AuditChainVerification.objects.create(tenant=tenant, requested_by=requested_by)
        enqueue_job(job)
    return job


def run_chain_verification(*, job: AuditChainVerification) -> AuditChainVerification:
    from apps.core.jobs import finish_job

    report = verify_chain(tenant=job.tenant)
    job.intact = report.intact
    job.checked_entries = report.checked_entries
    job.first_broken_sequence = report.first_broken_sequence
    job.problem = report.problem
    job.save(update_fields=["intact", "checked_entries", "first_broken_sequence", "problem",
                            "updated_at"])
    finish_job(job, checked_entries=report.checked_entries)
    return job
