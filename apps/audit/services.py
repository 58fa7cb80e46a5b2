"""The one way to write the domain audit trail (DESIGN "Audit").

``record`` runs in the caller's transaction: the operation and its audit entry commit or
roll back together.

Each tenant's entries form a chain of keyed hashes, checked by ``verify_chain`` against the
heads ``export_chain_head`` signs and writes outside the database; why it is built this way
(keys, the switch from plain hashes, the head's seal) is in :mod:`apps.audit.sealing`.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import models, transaction
from django.utils import timezone

from apps.audit import config_changes
from apps.audit.heads import BadHeadLineError, ExportedHead, append_head, read_heads
from apps.audit.models import AuditChainHead, AuditChainVerification, AuditEvent, SubjectAuditToken
from apps.audit.sealing import (
    GENESIS_HASH,
    canonical,
    chain_keys,
    head_seal,
    keyed_digest,
    matches_any,
    plain_digest,
    seal_message,
)
from apps.tenants.models import ApiKey, Membership, Tenant
from apps.tenants.scoping import TenantOwnedModel

logger = logging.getLogger("audit.services")

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


def _entry_message(entry: AuditEvent) -> bytes:
    return canonical({
        "tenant": entry.tenant_id,
        "sequence": entry.sequence,
        "occurred_at": entry.occurred_at.isoformat(),
        "action": entry.action,
        "actor": [entry.actor_type, entry.actor_id],
        "target": [entry.target_type, entry.target_id],
        "subject_token": entry.subject_token,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    })


def compute_entry_hash(entry: AuditEvent) -> str:
    """The entry's keyed hash (HMAC under the tenant's current chain key)."""
    return keyed_digest(chain_keys(entry.tenant_id)[0], _entry_message(entry))


def _hash_verifies(entry: AuditEvent, *, keyed: bool) -> bool:
    message = _entry_message(entry)
    if not keyed:  # written before keyed hashes (sealing: "Entries written before the switch")
        return hmac.compare_digest(plain_digest(message), entry.entry_hash)
    return matches_any(chain_keys(entry.tenant_id), message, entry.entry_hash)


def _seal(head: AuditChainHead) -> str:
    return head_seal(tenant_id=head.tenant_id, keyed_from_sequence=head.keyed_from_sequence,
                     pruned_through_sequence=head.pruned_through_sequence,
                     pruned_through_hash=head.pruned_through_hash)


def _seal_verifies(head: AuditChainHead) -> bool:
    return matches_any(chain_keys(head.tenant_id), seal_message(
        tenant_id=head.tenant_id, keyed_from_sequence=head.keyed_from_sequence,
        pruned_through_sequence=head.pruned_through_sequence,
        pruned_through_hash=head.pruned_through_hash), head.seal)


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
    heads.get_or_create(tenant=tenant, defaults={
        "last_sequence": 0, "last_hash": GENESIS_HASH, "keyed_from_sequence": 1,
        "seal": head_seal(tenant_id=tenant.pk, keyed_from_sequence=1,
                          pruned_through_sequence=0, pruned_through_hash="")})
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


def anchor_config_change(*, log_entry: Any) -> AuditEvent | None:
    """Anchor a django-auditlog ``LogEntry`` in its tenant's chain (``config.changed``), in
    the transaction that wrote it: the entry names the LogEntry and holds a keyed hash of its
    content, never its values (:mod:`apps.audit.config_changes`). Called for every new
    LogEntry, whatever wrote it (admin, API, service, task). ``None`` for a LogEntry about a
    model that belongs to no tenant."""
    tenant_id = config_changes.tenant_id_of(log_entry)
    if tenant_id is None:
        model = log_entry.content_type.model_class()
        if model is not None and issubclass(model, TenantOwnedModel):
            # The object is gone and was not the one being logged: nothing to anchor to.
            logger.error("audit.config_change_unanchored log_entry_id=%s", log_entry.pk)
        return None
    with transaction.atomic():
        content = config_changes.read_contents([log_entry.pk])[log_entry.pk]
        tenant = Tenant.objects.get(pk=tenant_id)
        actor = log_entry.actor if log_entry.actor_id else None
        return record(tenant, config_changes.CONFIG_CHANGED, actor,
                      (config_changes.LOG_ENTRY_TARGET, log_entry.pk),
                      config_changes.anchor_details(log_entry, content, tenant_id))


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
    last_sequence: int = 0  # the newest entry verified
    last_hash: str = ""
    keyed_from_sequence: int = 1
    anchor: ExportedHead | None = None  # the latest exported head (the chain reaches it)


def _broken(checked: int, sequence: int | None, problem: str) -> ChainReport:
    return ChainReport(False, checked, sequence, problem)


def _entries(tenant: Tenant, *, through: int) -> Iterator[AuditEvent]:
    return (AuditEvent.objects.for_tenant(tenant).filter(sequence__lte=through)
            .order_by("sequence").iterator(chunk_size=2000))


def verify_chain(*, tenant: Tenant) -> ChainReport:
    """Walk the chain and check it against the heads exported outside the database.

    Each entry must carry the next sequence number, link to the previous entry's hash and
    have the hash of its content (keyed, or plain before the head's ``keyed_from_sequence``);
    an entry whose head was exported must still have the exported hash; the database head
    must match the last entry, and the chain must reach the latest exported head (else its
    tail was truncated). The head's seal and every exported head line's signature must
    verify. Entries pruned by retention are skipped from the head's checkpoint on. Each
    ``config.changed`` entry's django-auditlog ``LogEntry`` must still exist with the content
    it anchored (:mod:`apps.audit.config_changes`). The report names the first broken entry
    by sequence where there is one."""
    anchors = config_changes.AnchorChecks(tenant.pk)
    report = _verify_links(tenant, anchors)
    # Anchors not yet checked all lie before the first broken link (or the chain is intact).
    broken_anchor = anchors.flush()
    if broken_anchor is not None:
        return _broken(report.checked_entries, *broken_anchor)
    return report


def _verify_links(tenant: Tenant, anchors: config_changes.AnchorChecks) -> ChainReport:
    """:func:`verify_chain` but the last batch of anchors: the links, hashes and heads."""
    head = AuditChainHead.objects.for_tenant(tenant).first()
    try:
        exported = read_heads(tenant.pk)
    except BadHeadLineError as bad:
        return _broken(0, None, str(bad))
    if head is not None and not _seal_verifies(head):
        return _broken(0, head.pruned_through_sequence + 1,
                       "the chain head's seal does not verify: its hash-scheme switch or "
                       "pruning checkpoint was changed outside the application")
    pruned = head.pruned_through_sequence if head else 0
    keyed_from = head.keyed_from_sequence if head else 1
    last_sequence = head.last_sequence if head else 0
    latest = exported[-1] if exported else None
    if latest is not None and latest.keyed_from_sequence != keyed_from:
        return _broken(0, min(keyed_from, latest.keyed_from_sequence),
                       f"the chain is keyed from #{keyed_from}, its exported head says "
                       f"#{latest.keyed_from_sequence}")
    anchored_heads = {h.sequence: h for h in exported if h.sequence > pruned}
    expected_prev = head.pruned_through_hash if head and pruned else GENESIS_HASH
    expected_seq = pruned + 1
    checked = 0
    for entry in _entries(tenant, through=last_sequence):
        if entry.sequence != expected_seq:
            return _broken(checked, expected_seq,
                           f"entry #{expected_seq} is missing (next found: #{entry.sequence})")
        if entry.prev_hash != expected_prev:
            return _broken(checked, entry.sequence,
                           f"entry #{entry.sequence} does not link to entry #{entry.sequence - 1}")
        if not _hash_verifies(entry, keyed=entry.sequence >= keyed_from):
            return _broken(checked, entry.sequence,
                           f"entry #{entry.sequence} was altered (hash mismatch)")
        anchor = anchored_heads.get(entry.sequence)
        if anchor is not None and anchor.hash != entry.entry_hash:
            return _broken(checked, entry.sequence,
                           f"entry #{entry.sequence} differs from its head exported at "
                           f"{anchor.exported_at}")
        if entry.action == config_changes.CONFIG_CHANGED:
            broken_anchor = anchors.add(entry)
            if broken_anchor is not None:
                return _broken(checked, *broken_anchor)
        expected_prev = entry.entry_hash
        expected_seq += 1
        checked += 1
    if last_sequence != expected_seq - 1:
        return _broken(checked, expected_seq,
                       f"entries #{expected_seq}..#{last_sequence} are missing (tail deleted)")
    if head and last_sequence and head.last_hash != expected_prev:
        return _broken(checked, last_sequence, f"entry #{last_sequence} does not match the head")
    beyond = (AuditEvent.objects.for_tenant(tenant).filter(sequence__gt=last_sequence)
              .order_by("sequence").values_list("sequence", flat=True).first())
    if beyond is not None:  # appended since the head was read, or slipped in past it
        now_last = (AuditChainHead.objects.for_tenant(tenant)
                    .values_list("last_sequence", flat=True).first() or 0)
        if beyond > now_last:
            return _broken(checked, beyond, f"entry #{beyond} lies beyond the chain head")
    top = max(anchored_heads.values(), key=lambda h: h.sequence, default=None)
    if top is not None and top.sequence > last_sequence:
        return _broken(checked, last_sequence + 1,
                       f"entries #{last_sequence + 1}..#{top.sequence} are missing: the chain "
                       f"ends before its head exported at {top.exported_at} (truncated)")
    return ChainReport(True, checked, last_sequence=last_sequence,
                       last_hash=expected_prev if checked else "", keyed_from_sequence=keyed_from,
                       anchor=latest)


@dataclass(frozen=True)
class HeadExport:
    report: ChainReport
    head: ExportedHead | None = None  # None: the chain is broken or empty
    written: bool = False  # False: broken, empty, or this head was already the latest line


def export_chain_head(*, tenant: Tenant) -> HeadExport:
    """Verify the tenant's chain, then append its newest entry, signed, to the tenant's head
    file outside the database. Idempotent: a head already the file's latest line is not
    written again. A broken chain exports nothing (signing it would bless the break)."""
    report = verify_chain(tenant=tenant)
    if not report.intact or not report.checked_entries:
        return HeadExport(report)
    exported = read_heads(tenant.pk)
    latest = exported[-1] if exported else None
    if latest and (latest.sequence, latest.hash) == (report.last_sequence, report.last_hash):
        return HeadExport(report, latest)
    entry = AuditEvent.objects.for_tenant(tenant).get(sequence=report.last_sequence)
    head = ExportedHead(
        tenant=tenant.pk, sequence=entry.sequence, entry_id=entry.pk, hash=entry.entry_hash,
        occurred_at=entry.occurred_at.isoformat(), count=report.checked_entries,
        keyed_from_sequence=report.keyed_from_sequence, exported_at=timezone.now().isoformat())
    line = append_head(head)
    if settings.AUDIT_HEADS_MAIL_OWNERS:
        _mail_head_to_owners(tenant=tenant, head=head, line=line)
    return HeadExport(report, head, written=True)


def _mail_head_to_owners(*, tenant: Tenant, head: ExportedHead, line: str) -> None:
    """A second copy of the signed head, out of reach of whoever runs the servers."""
    owners = list(Membership.objects.for_tenant(tenant).filter(role=Membership.Role.OWNER)
                  .exclude(user__email="").values_list("user__email", flat=True))
    if not owners:
        return
    body = (f"The audit trail of {tenant.name} had {head.count} entries up to entry "
            f"#{head.sequence} ({head.occurred_at}). Keep this message: the signed line below "
            "lets anyone holding the master key prove later that no entry up to it was "
            "changed or removed.\n\n" + line)
    try:
        send_mail(f"Audit trail head of {tenant.name}: entry #{head.sequence}", body,
                  settings.DEFAULT_FROM_EMAIL, owners, fail_silently=False)
    except Exception:  # the head is already in AUDIT_HEADS_DIR; a mail outage is not fatal
        logger.exception("audit.head_mail_failed tenant_id=%s", tenant.pk)


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
            head.seal = _seal(head)
            head.save(update_fields=["pruned_through_sequence", "pruned_through_hash", "seal"])
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
    with transaction.atomic():
        job.save(update_fields=["intact", "checked_entries", "first_broken_sequence",
                                "problem", "updated_at"])
        finish_job(job, checked_entries=report.checked_entries)
        if not report.intact:
            from apps.webhooks import services as webhooks

            webhooks.emit_webhook_event(
                tenant_id=job.tenant_id, event_type=webhooks.EventType.AUDIT_CHAIN_BROKEN,
                dedupe_key=f"audit.chain_broken:{job.pk}",
                data={"verification_id": job.pk, "status": "broken",
                      "checked_entries": report.checked_entries,
                      "first_broken_sequence": report.first_broken_sequence})
    return job
