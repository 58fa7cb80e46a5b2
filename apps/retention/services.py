"""Writing retention (STYLE S3): policies, and the runs that enforce them.

A run is a :class:`RetentionRun` row (a durable job) created with every category's cutoff
fixed at that moment. Each batch is one short transaction that locks the run row, deletes
at most ``batch_size`` rows per statement and stores the category's checkpoint; the last
batch of a category also writes its receipt (audit trail + :class:`RetentionReceipt`).
So a run that is interrupted and started again (by the sweeper, beat or the command)
resumes with the same cutoffs and deletes exactly the rest, and running it twice deletes
nothing more.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.core.jobs import enqueue_job, finish_job, run_job
from apps.retention.categories import (
    RetentionCategory,
    get_retention_category,
    retention_categories,
)
from apps.retention.models import RetentionPolicy, RetentionReceipt, RetentionRun
from apps.retention.selectors import (
    MAX_PAUSE_SECONDS,
    PolicyView,
    default_batch_size,
    get_cutoffs,
    get_retention_category_or_404,
    get_retention_policy,
    get_unfinished_run,
    has_run_for_slot,
    latest_slot,
    pause_ratio,
    run_checkpoints,
)
from apps.tenants.models import Tenant
from apps.webhooks import services as webhooks

logger = logging.getLogger("retention")

MAX_DAYS = 36_500  # a century: anything longer is a typo, not a policy
MAX_HOURS = MAX_DAYS * 24


# --- Policies -----------------------------------------------------------------------------


def provision_retention_policies(tenant: Tenant) -> None:
    """Tenant provisioner: one policy row per registered category with its default.
    Idempotent (existing rows, edited or not, are left alone)."""
    RetentionPolicy.objects.bulk_create(
        [RetentionPolicy(tenant=tenant, category=c.code, days=c.default_days)
         for c in retention_categories()],
        ignore_conflicts=True,
    )


def _valid_number(value: Any, limit: int) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= limit)


def is_period_settable(category: RetentionCategory) -> bool:
    """Whether a tenant may set the category's period (else ``period_not_settable``)."""
    return (category.follows is None and category.default_days is not None
            and category.time_based and category.settable)


def validate_period(*, category: RetentionCategory, days: Any = None, hours: Any = None
                    ) -> tuple[int | None, int | None]:
    """``(days, hours)`` with exactly one set, or ``ApplicationError`` with a specific code:
    ``period_not_settable``, ``missing_period``, ``ambiguous_period``, ``invalid_period``."""
    if not is_period_settable(category):
        follows = (f" it follows the '{category.follows}' policy" if category.follows
                   else " it is not time-based" if not category.time_based
                   else " it is fixed by the app that holds the data")
        raise ApplicationError(f"The period of '{category.code}' cannot be set:{follows}.",
                               code="period_not_settable",
                               details={"follows": category.follows})
    if days is None and hours is None:
        raise ApplicationError('Send {"days": N} or {"hours": N}.', code="missing_period")
    if days is not None and hours is not None:
        raise ApplicationError('Send either "days" or "hours", not both.',
                               code="ambiguous_period")
    if days is not None and not _valid_number(days, MAX_DAYS):
        raise ApplicationError(f'"days" must be a whole number from 1 to {MAX_DAYS}.',
                               code="invalid_period", details={"field": "days"})
    if hours is not None and not _valid_number(hours, MAX_HOURS):
        raise ApplicationError(f'"hours" must be a whole number from 1 to {MAX_HOURS}.',
                               code="invalid_period", details={"field": "hours"})
    return days, hours


@transaction.atomic
def set_retention_policy(*, tenant: Tenant, category: str, days: Any = None, hours: Any = None,
                         actor: Any = None) -> PolicyView:
    """Set one category's period (in days, or in hours) for ``tenant``. The row is saved
    with ``save()`` so django-auditlog records the change, and a ``retention.policy_changed``
    entry goes to the audit trail in the same transaction. Setting the current value is a
    no-op. Takes effect at the next run (a run in progress keeps its cutoffs)."""
    spec = get_retention_category_or_404(category)
    days, hours = validate_period(category=spec, days=days, hours=hours)
    provision_retention_policies(tenant)
    policy = RetentionPolicy.objects.for_tenant(tenant).select_for_update().get(
        category=category)
    before = {"days": policy.days, "hours": policy.hours}
    if before != {"days": days, "hours": hours}:
        policy.days, policy.hours = days, hours
        policy.full_clean()
        policy.save()
        record(tenant, "retention.policy_changed", actor, policy,
               {"category": category, "from": before, "to": {"days": days, "hours": hours}})
    return get_retention_policy(tenant=tenant, category=category)


# --- Runs ---------------------------------------------------------------------------------


def _new_checkpoint(cutoff: datetime) -> dict[str, Any]:
    return {"cutoff": cutoff.isoformat(), "deleted": 0, "rows": 0, "batches": 0,
            "seconds": 0.0, "done": False, "state": {}}


def start_retention_run(
    *, tenant: Tenant, trigger: str, requested_by: Any = None,
    scheduled_for: datetime | None = None, batch_size: int | None = None,
    enqueue: bool = True, now: datetime | None = None,
) -> RetentionRun:
    """Create a run with every category's cutoff fixed now (UTC) and, with ``enqueue``,
    send it to a worker after commit. Raises ``IntegrityError`` when a scheduled run for
    the same slot exists."""
    with transaction.atomic():
        provision_retention_policies(tenant)
        cutoffs = get_cutoffs(tenant=tenant, now=now)
        order = [c.code for c in retention_categories() if c.code in cutoffs]
        run = RetentionRun.objects.create(
            tenant=tenant, trigger=trigger, requested_by=requested_by,
            scheduled_for=scheduled_for, batch_size=batch_size or default_batch_size(),
            progress={"order": order,
                      "categories": {code: _new_checkpoint(cutoffs[code]) for code in order}},
        )
        if enqueue:
            enqueue_job(run)
    return run


def resume_or_start_retention_run(*, tenant: Tenant, trigger: str, requested_by: Any = None,
                                  enqueue: bool = True) -> RetentionRun:
    """The tenant's unfinished run if there is one (never two side by side), else a new
    one. The tenant row is locked so two callers cannot both start one."""
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        unfinished = get_unfinished_run(tenant=tenant)
        if unfinished is not None:
            if enqueue:
                enqueue_job(unfinished)
            return unfinished
        return start_retention_run(tenant=tenant, trigger=trigger, requested_by=requested_by,
                                   enqueue=enqueue)


def _write_receipt(*, tenant: Tenant, run: RetentionRun, category: RetentionCategory,
                   checkpoint: dict[str, Any]) -> RetentionReceipt:
    details = {
        "category": category.code,
        "cutoff": checkpoint["cutoff"],
        "unit": category.unit,
        "deleted": checkpoint["deleted"],
        "rows_deleted": checkpoint["rows"],
        "batches": checkpoint["batches"],
        "duration_seconds": round(checkpoint["seconds"], 3),
        "run": run.pk,
    }
    entry = record(tenant, "retention.receipt", "retention", run, details)
    return RetentionReceipt.objects.create(
        tenant=tenant, run=run, category=category.code,
        cutoff=datetime.fromisoformat(checkpoint["cutoff"]), unit=category.unit,
        deleted=checkpoint["deleted"], rows_deleted=checkpoint["rows"],
        batches=checkpoint["batches"], duration_seconds=checkpoint["seconds"],
        audit_sequence=entry.sequence,
    )


def _run_batch(*, tenant: Tenant, run_id: int, code: str,
               category: RetentionCategory | None) -> tuple[int, bool]:
    """One batch of one category in one transaction; ``(deleted, category done)``."""
    started = time.monotonic()
    with transaction.atomic():
        run = RetentionRun.objects.for_tenant(tenant).select_for_update().get(pk=run_id)
        checkpoint = run.progress["categories"][code]
        if checkpoint["done"]:
            return 0, True
        if category is None:  # unregistered since the run began: nothing to do any more
            checkpoint.update(done=True, skipped="category no longer registered")
            deleted, done = 0, True
        else:
            cutoff = datetime.fromisoformat(checkpoint["cutoff"])
            result = category.purge(tenant, cutoff, run.batch_size,
                                    dict(checkpoint.get("state") or {}))
            deleted, done = result.deleted, result.done
            checkpoint["deleted"] += result.deleted
            checkpoint["rows"] += result.deleted if result.rows is None else result.rows
            checkpoint["batches"] += 1
            checkpoint["seconds"] += time.monotonic() - started
            checkpoint["state"] = result.state
            if done:
                checkpoint["done"] = True
                _write_receipt(tenant=tenant, run=run, category=category,
                               checkpoint=checkpoint)
                if category.after_purge is not None and checkpoint["deleted"]:
                    hook, total = category.after_purge, checkpoint["deleted"]
                    # robust: a failing hook is logged and never undoes the committed batch.
                    transaction.on_commit(lambda: hook(tenant, cutoff, total), robust=True)
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["progress", "heartbeat_at", "updated_at"])
    return deleted, done


def execute_retention_run(*, run: RetentionRun) -> dict[str, int]:
    """Run (or resume) every category of a claimed run, then mark it succeeded. Returns
    ``{category: N}`` deleted by this call. Idempotent: a finished category is skipped, and
    concurrent executions of one run serialize on the run row, batch by batch. Pauses
    between full batches (``RETENTION_PAUSE_RATIO`` times the batch's duration)."""
    tenant = run.tenant
    ratio = pause_ratio()
    deleted_now: dict[str, int] = {}
    for code, _ in run_checkpoints(run):
        category = get_retention_category(code)
        deleted_now[code] = 0
        while True:
            started = time.monotonic()
            deleted, done = _run_batch(tenant=tenant, run_id=run.pk, code=code,
                                       category=category)
            deleted_now[code] += deleted
            if done:
                break
            # Between full batches, give the database back as much time as the batch took
            # (RETENTION_PAUSE_RATIO): ingestion keeps its latency, and the pause grows by
            # itself when the database is busy.
            time.sleep(min((time.monotonic() - started) * ratio, MAX_PAUSE_SECONDS))
    run.refresh_from_db()
    if not run.is_finished:
        deleted = {code: cp["deleted"] for code, cp in run_checkpoints(run)}
        with transaction.atomic():
            finish_job(run, deleted=deleted)
            webhooks.emit_webhook_event(
                tenant_id=run.tenant_id, event_type=webhooks.EventType.RETENTION_COMPLETED,
                dedupe_key=f"retention.completed:{run.pk}",
                data={"id": run.pk, "status": run.status, "trigger": run.trigger,
                      "deleted": deleted})
    logger.info("retention.run_finished tenant_id=%s run_id=%s deleted=%s", run.tenant_id,
                run.pk, deleted_now)
    return deleted_now


def claim_and_execute_retention_run(*, tenant_id: int, run_id: int) -> dict[str, int] | None:
    """Claim the run (``None`` when it is gone or already finished: a duplicate delivery)
    and execute it, under the job runner's one error policy (``run_job``)."""
    return run_job(RetentionRun, tenant_id=tenant_id, job_id=run_id,
                   work=lambda run: execute_retention_run(run=run))


def enforce_retention_now(*, tenant: Tenant, trigger: str = RetentionRun.Trigger.COMMAND,
                          requested_by: Any = None) -> dict[str, int]:
    """Resume the tenant's unfinished run or start one, and execute it in this process
    (``manage.py enforce_retention``). Returns what this call deleted per category."""
    run = resume_or_start_retention_run(tenant=tenant, trigger=trigger,
                                        requested_by=requested_by, enqueue=False)
    deleted = claim_and_execute_retention_run(tenant_id=tenant.pk, run_id=run.pk)
    if deleted is None:  # finished by a worker meanwhile
        return {code: 0 for code, _ in run_checkpoints(run)}
    return deleted


def schedule_due_retention_runs(*, now: datetime | None = None) -> int:
    """Beat: start one run per tenant and daily slot (the tenant's run time, UTC) once the
    slot has passed, unless one exists or an earlier run is unfinished (the sweeper resumes
    that one). Crosses tenants on purpose: retention applies to every tenant's data, active
    or not. Idempotent (one run per tenant and slot, a DB constraint). Returns runs started."""
    now = now or timezone.now()
    started = 0
    for tenant in Tenant.objects.order_by("pk"):
        slot = latest_slot(tenant=tenant, now=now)
        if has_run_for_slot(tenant=tenant, slot=slot) or get_unfinished_run(tenant=tenant):
            continue
        try:
            start_retention_run(tenant=tenant, trigger=RetentionRun.Trigger.SCHEDULE,
                                scheduled_for=slot, now=now)
        except IntegrityError:  # beat fired twice; the other one started it
            continue
        started += 1
    return started


# --- Models forget deleted data -----------------------------------------------------------

def notify_models_of_deleted_data(*, tenant: Tenant, cutoff: datetime, deleted: int,
                                  category: str) -> bool:
    """After commit, once ``category`` deleted ``deleted`` of what was older than ``cutoff``
    (events, or inactive subjects whose data was all older): the modeling app retrains
    if its active model holds any of it. Returns whether a retrain was asked for."""
    from apps.modeling.services import request_retrain_after_deletion

    active = request_retrain_after_deletion(tenant=tenant, cutoff=cutoff)
    if active is None:
        return False
    logger.info("retention.retrain_requested tenant_id=%s category=%s deleted=%s version=%s",
                tenant.pk, category, deleted, active.number)
    return True
