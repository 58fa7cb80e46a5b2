"""Fulfilment jobs: the durable :class:`FulfilmentJob` rows (DESIGN "Tasks") and their
checkpointed steps.

Each handler is one *step*: its work and its checkpoint (``progress["steps"]``) commit in one
transaction, under a lock on the job row, so

* a worker killed mid-step rolls the step back and the redelivered (or swept) job redoes
  exactly that step;
* a finished step is never run again, by the same job or by a concurrent duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.jobs import enqueue_job, fail_job, finish_job
from apps.privacy.models import FulfilmentJob, PrivacyRequest
from apps.privacy.services.lifecycle import lock_request, transition_privacy_request

ACTIVE_JOB = [FulfilmentJob.Status.PENDING, FulfilmentJob.Status.RUNNING]


def enqueue_fulfilment(*, privacy_request: PrivacyRequest, actor: Any = None) -> FulfilmentJob:
    """The request's active job, or a new one sent to the worker after commit."""
    pr = privacy_request
    active = (FulfilmentJob.objects.for_tenant(pr.tenant_id)
              .filter(privacy_request=pr, status__in=ACTIVE_JOB).first())
    if active is not None:
        return active
    job = FulfilmentJob.objects.create(tenant_id=pr.tenant_id, privacy_request=pr)
    enqueue_job(job)
    return job


def cancel_jobs(*, privacy_request: PrivacyRequest) -> int:
    cancelled = 0
    for job in (FulfilmentJob.objects.for_tenant(privacy_request.tenant_id)
                .filter(privacy_request=privacy_request, status__in=ACTIVE_JOB)):
        fail_job(job, "cancelled: the request was closed", retryable=False)
        cancelled += 1
    return cancelled


def run_step(job: FulfilmentJob, name: str, work: Callable[[], dict[str, Any]],
             on_done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run ``work`` unless checkpoint ``name`` exists; the work, its checkpoint and
    ``on_done`` (the audit entry) commit together. Returns the checkpoint."""
    with transaction.atomic():
        locked = FulfilmentJob.objects.for_tenant(job.tenant_id).select_for_update().get(pk=job.pk)
        steps = dict(locked.progress.get("steps", {}))
        if name in steps:
            job.progress = locked.progress
            return steps[name]
        outcome = work()
        now = timezone.now()
        steps[name] = {**outcome, "at": now.isoformat()}
        locked.progress = {**locked.progress, "steps": steps, "last_step": name}
        locked.heartbeat_at = now
        locked.save(update_fields=["progress", "heartbeat_at", "updated_at"])
        job.progress, job.heartbeat_at = locked.progress, now
        if on_done is not None:
            on_done(steps[name])
        return steps[name]


def steps_of(pr: PrivacyRequest) -> dict[str, dict[str, Any]]:
    """Checkpoints of every job of the request, merged (a re-run after a failed verification
    adds its counts to the first run's)."""
    merged: dict[str, dict[str, Any]] = {}
    for progress in (FulfilmentJob.objects.for_tenant(pr.tenant_id)
                     .filter(privacy_request=pr).order_by("created_at", "pk")
                     .values_list("progress", flat=True)):
        for name, step in (progress or {}).get("steps", {}).items():
            if name in merged and "count" in step:
                merged[name] = {**step, "count": merged[name].get("count", 0) + step["count"]}
            else:
                merged[name] = step
        for sweep in (progress or {}).get("sweeps", []):
            for name, count in sweep.items():
                if name in merged and "count" in merged[name]:
                    merged[name] = {**merged[name], "count": merged[name]["count"] + count}
    return merged


def begin_job(job: FulfilmentJob, *,
              on_start: Callable[[PrivacyRequest], None] | None = None) -> PrivacyRequest | None:
    """Lock the job's request and bring it into work: the request, or ``None`` when there is
    nothing to do (the job is then finished or failed). A verified request moves to
    ``in_progress`` and ``on_start`` runs in that same transaction; a closed one finishes
    the job without work; an unverified one fails it, releasing and erasing nothing."""
    with transaction.atomic():
        pr = lock_request(job.privacy_request)
        if pr.status in PrivacyRequest.CLOSED_STATUSES:
            finish_job(job, outcome=f"request already {pr.status}")
            return None
        if pr.status == PrivacyRequest.Status.VERIFIED:
            transition_privacy_request(pr, to=PrivacyRequest.Status.IN_PROGRESS)
            if on_start is not None:
                on_start(pr)
        elif pr.status != PrivacyRequest.Status.IN_PROGRESS:
            # Unverified requests release nothing and erase nothing.
            fail_job(job, f"request is {pr.status}, not verified", retryable=False)
            return None
    return pr
