"""Durable jobs: work that must happen is a database row first, the broker only a doorbell.

A concrete job model is tenant-owned and inherits :class:`DurableJob` (``class
TrainingRun(TenantOwnedModel, DurableJob)``) and names the Celery task that runs it:
``job_task``, the task's dotted path, called with ``(tenant_id, job_id)`` like every task
(STYLE S8). This module knows tenancy only by that convention and the managers every
tenant-owned model has (``objects.for_tenant``, ``all_tenants``): core imports no app.
:func:`enqueue_job` sends the task after commit; the task calls :func:`run_job`, the one
runner: it claims the job, runs the app's work on it, finishes it, and applies the one error
policy (:func:`run_job`'s docstring). The beat sweeper (:func:`sweep_stuck_jobs`)
re-sends jobs whose message was lost (a broker restart, a killed worker) and gives up,
visibly, after ``max_attempts``.

**A whole worker lost.** With ``acks_late`` the message of a task whose worker died with
all its processes stays unacknowledged in the broker (on Redis, until the visibility
timeout, which must outlast the longest task, hours), so the job row is what brings the
work back. Each claim records the Celery node that runs the job (``DurableJob.worker``), and
a running job is *orphaned* when no live worker reports its task among the ones it is
executing (``inspect().active()``), or, where the broker cannot broadcast, when it was
claimed by a worker of the same node name before that worker started again.
:func:`reconcile_jobs` re-sends orphans: on every worker start (``worker_ready``, see
``platform_site/celery.py``) and in every sweep. Independently of liveness, a running job
silent for longer than its task's hard time limit (plus :data:`LOST_MARGIN`) cannot still be
executing and is re-sent (:func:`lost_after`). A re-sent job that is in fact still running
costs nothing but a duplicate delivery: jobs are idempotent by their checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from django.apps import apps
from django.db import InterfaceError, OperationalError, models, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.core.exceptions import ApplicationError
from apps.core.models import BaseModel

logger = logging.getLogger("core.jobs")

J = TypeVar("J", bound="DurableJob")
R = TypeVar("R")

#: Errors worth retrying soon: the database went away or timed out. The task re-raises them
#: so Celery retries with backoff and jitter (``autoretry_for=TRANSIENT_ERRORS``).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError,
                                                      TimeoutError)


class DurableJob(BaseModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    job_task: ClassVar[str]

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    worker = models.CharField(
        max_length=255, blank=True,
        help_text="The Celery node that claimed the job last (empty: run in-process).")
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED}


def durable_job_models() -> list[type[DurableJob]]:
    return [m for m in apps.get_models() if issubclass(m, DurableJob)]


#: Added to a task's hard time limit: a job silent for longer cannot still be executing.
LOST_MARGIN = timedelta(seconds=60)
#: How long a reconciliation waits for the live workers to say what they are executing. A
#: worker that has not answered by then counts as gone and its running jobs are re-sent, so
#: this is generous: under load (CI, a busy host) 2 s missed a live worker's answer.
INSPECT_TIMEOUT_S = 5.0


def lost_after(model: type[DurableJob]) -> timedelta:
    """How long a job of ``model`` may go without a heartbeat (or, pending, without being
    picked up) before the sweeper re-sends it: its task's hard time limit (the task's own,
    else ``CELERY_TASK_TIME_LIMIT``) plus :data:`LOST_MARGIN`. Past the hard limit Celery
    has killed any execution of it, so the job cannot be running."""
    from celery import current_app

    task = import_string(model.job_task)
    limit = getattr(task, "time_limit", None) or current_app.conf.task_time_limit
    return timedelta(seconds=float(limit or 3600)) + LOST_MARGIN


def enqueue_job(job: DurableJob) -> None:
    """Mark the job enqueued and send its task once the surrounding transaction commits."""
    now = timezone.now()
    type(job).objects.for_tenant(job.tenant_id).filter(pk=job.pk).update(enqueued_at=now)
    job.enqueued_at = now
    task, args = import_string(job.job_task), [job.tenant_id, job.pk]
    transaction.on_commit(lambda: task.apply_async(args=args))


def claim_job(model: type[J], *, tenant_id: int, job_id: int) -> J | None:
    """Start (or resume, after a redelivery) a job. ``None`` when it is gone or finished,
    so a duplicate delivery is a no-op."""
    with transaction.atomic():
        job = (
            model.objects.for_tenant(tenant_id).select_for_update().filter(pk=job_id).first()
        )
        if job is None:
            logger.warning("core.job_missing model=%s id=%s", model.__name__, job_id)
            return None
        if job.is_finished:
            return None
        now = timezone.now()
        job.status = DurableJob.Status.RUNNING
        job.attempts += 1
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.worker = current_worker()
        job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "worker",
                                "updated_at"])
        return job


def current_worker() -> str:
    """The node name of the Celery worker executing the current task (``""`` outside a
    worker: eager, a management command, a test)."""
    from celery import current_task

    request = getattr(current_task, "request", None)
    if request is None or request.is_eager or request.called_directly:
        return ""
    return str(request.hostname or "")


def run_job(model: type[J], *, tenant_id: int, job_id: int, work: Callable[[J], R]) -> R | None:
    """Claim job ``job_id`` of ``model`` and run ``work`` on it: the body of every durable
    job's task. ``None`` when the job is gone or finished (a duplicate delivery is a no-op).
    A job that ``work`` left running (neither finished nor failed) is finished when it
    returns.

    The one error policy:

    * :class:`ApplicationError` (a domain refusal: nothing to train on, a closed request):
      the job fails for good, with the error's code and message, and the task ends.
    * a transient error (:data:`TRANSIENT_ERRORS`): the job stays pending and the error is
      re-raised, so the task retries it with backoff (and the sweeper, if the task cannot).
    * anything else: a fault. The job records the error's class only (a message could quote
      a subject's data), stays pending for the sweeper until ``max_attempts`` is spent, and
      the traceback goes to the log; the task ends (the job row, not the broker message, is
      the record).
    """
    job = claim_job(model, tenant_id=tenant_id, job_id=job_id)
    if job is None:
        return None
    try:
        result = work(job)
    except ApplicationError as exc:
        _refresh(job)
        fail_job(job, f"{exc.code}: {exc.message}", retryable=False)
        return None
    except TRANSIENT_ERRORS as exc:
        _refresh(job)
        fail_job(job, f"transient: {type(exc).__name__}", retryable=True)
        raise
    except Exception as exc:
        logger.exception("core.job_failed model=%s id=%s", model.__name__, job_id)
        _refresh(job)
        fail_job(job, f"{type(exc).__name__} after "
                      f"{job.progress.get('last_step', job.progress.get('stage', 'start'))}",
                 retryable=True)
        return None
    _refresh(job)
    if job.status == DurableJob.Status.RUNNING:  # neither finished nor failed by the work
        finish_job(job)
    return result


def _refresh(job: DurableJob) -> None:
    """Read the job row again (the work saved progress or a status through its own copy);
    a failed connection leaves the in-memory copy, which is what ``fail_job`` saves."""
    try:
        job.refresh_from_db()
    except TRANSIENT_ERRORS:
        logger.warning("core.job_refresh_failed id=%s", job.pk)


def record_progress(job: DurableJob, **progress: Any) -> None:
    """Store progress (shown in the admin) and prove the job is alive."""
    job.progress = {**job.progress, **progress}
    job.heartbeat_at = timezone.now()
    type(job).objects.for_tenant(job.tenant_id).filter(pk=job.pk).update(
        progress=job.progress, heartbeat_at=job.heartbeat_at, updated_at=job.heartbeat_at
    )


def finish_job(job: DurableJob, **progress: Any) -> None:
    job.progress = {**job.progress, **progress}
    job.status = DurableJob.Status.SUCCEEDED
    job.finished_at = timezone.now()
    job.last_error = ""
    job.save(update_fields=["progress", "status", "finished_at", "last_error", "updated_at"])


def fail_job(job: DurableJob, error: str, *, retryable: bool) -> None:
    """Record an error. A retryable one leaves the job pending for the sweeper (or the
    task's own retry) until ``max_attempts`` is spent; then it is failed for good."""
    give_up = not retryable or job.attempts >= job.max_attempts
    job.status = DurableJob.Status.FAILED if give_up else DurableJob.Status.PENDING
    job.last_error = error[:4000]
    job.finished_at = timezone.now() if give_up else None
    job.save(update_fields=["status", "last_error", "finished_at", "updated_at"])


def _requeue(job: DurableJob, counts: dict[str, int]) -> None:
    """Re-send ``job``, or fail it for good when its attempts are spent."""
    with transaction.atomic():
        if job.attempts >= job.max_attempts:
            fail_job(job, f"gave up after {job.attempts} attempts", retryable=False)
            counts["failed"] += 1
        else:
            job.status = DurableJob.Status.PENDING
            job.save(update_fields=["status", "updated_at"])
            enqueue_job(job)
            counts["requeued"] += 1


#: A job task as a live worker reports it: ``(task name, tenant id, job id)``.
TaskKey = tuple[str, int, int]


def executing_job_tasks(timeout: float = INSPECT_TIMEOUT_S) -> set[TaskKey] | None:
    """Every durable-job task the live workers report executing now, or ``None`` when no
    worker answered (the broker cannot broadcast, or none is up): then liveness is unknown
    and nothing may be judged orphaned by it."""
    from celery import current_app

    try:
        replies = current_app.control.inspect(timeout=timeout).active()
    except Exception:  # a transport without broadcast, a broker away: liveness unknown
        logger.warning("core.jobs_inspect_failed", exc_info=True)
        return None
    if not replies:
        return None
    running: set[TaskKey] = set()
    for requests in replies.values():
        for request in requests or []:
            args = request.get("args") or []
            if len(args) >= 2 and all(isinstance(a, int) for a in args[:2]):
                running.add((str(request.get("name")), int(args[0]), int(args[1])))
    return running


def reconcile_jobs(*, worker: str = "", started_at: datetime | None = None,
                   live: set[TaskKey] | None | bool = True) -> dict[str, int]:
    """Re-send running jobs that no live worker is executing (their worker died whole, so
    their message sits unacknowledged in the broker): those claimed by a worker (``worker``
    set) before this check began that no live worker reports (``live``: the reported
    tasks; ``True``, ask the workers now, :func:`executing_job_tasks`), and, whatever the
    broker can tell, those claimed by the node ``worker`` before it (re)started at
    ``started_at`` (the caller is that node, just started). Jobs run in-process (``worker``
    empty) are left to the sweeper's time rule. Crosses tenants like the sweeper."""
    counts = {"requeued": 0, "failed": 0}
    began = timezone.now()
    claimed = [(model, models.Q(status=DurableJob.Status.RUNNING, heartbeat_at__lt=began)
                & ~models.Q(worker="")) for model in durable_job_models()]
    if not any(model.all_tenants.filter(q).exists() for model, q in claimed):
        return counts
    reported = executing_job_tasks() if live is True else live
    for model, q in claimed:
        for job in model.all_tenants.filter(q).iterator():  # crosses tenants: see above
            restarted = (bool(worker) and job.worker == worker and started_at is not None
                         and job.heartbeat_at is not None and job.heartbeat_at < started_at)
            gone = (isinstance(reported, set)
                    and (model.job_task, job.tenant_id, job.pk) not in reported)
            if restarted or gone:
                logger.warning("core.job_orphaned model=%s id=%s worker=%s", model.__name__,
                               job.pk, job.worker)
                _requeue(job, counts)
    if counts["requeued"] or counts["failed"]:
        logger.info("core.jobs_reconciled requeued=%s failed=%s", counts["requeued"],
                    counts["failed"])
    return counts


def sweep_stuck_jobs(*, now: Any = None, live: set[TaskKey] | None | bool = True
                     ) -> dict[str, int]:
    """Re-enqueue lost jobs of every durable-job model; fail those out of attempts.

    Lost: pending and not picked up, or running without a heartbeat, for longer than the
    model's :func:`lost_after` (its task's hard time limit and a margin); and running jobs
    that no live worker executes (:func:`reconcile_jobs`; ``live`` as there).

    Crosses tenants on purpose: it is the system's own housekeeping, and it only touches
    job bookkeeping columns.
    """
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0}
    for model in durable_job_models():
        cutoff = now - lost_after(model)
        stale = model.all_tenants.filter(  # crosses tenants: see the docstring
            models.Q(status=DurableJob.Status.PENDING)
            & (models.Q(enqueued_at__lt=cutoff) | models.Q(enqueued_at__isnull=True))
            | models.Q(status=DurableJob.Status.RUNNING, heartbeat_at__lt=cutoff)
        )
        for job in stale.iterator():
            _requeue(job, counts)
    for key, value in reconcile_jobs(live=live).items():
        counts[key] += value
    if counts["requeued"] or counts["failed"]:
        logger.info("core.jobs_swept requeued=%s failed=%s", counts["requeued"], counts["failed"])
    return counts
