from __future__ import annotations

from datetime import datetime

from celery import shared_task


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def sweep_stuck_jobs_task() -> dict[str, int]:
    """Beat, every minute: re-send durable jobs whose broker message was lost, or whose
    worker is gone (``apps.core.jobs.sweep_stuck_jobs``)."""
    from apps.core.jobs import sweep_stuck_jobs

    return sweep_stuck_jobs()


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def reconcile_jobs_task(worker: str = "", started_at: str | None = None) -> dict[str, int]:
    """Sent by every worker as it starts (``worker_ready``): re-send the running jobs that
    no live worker executes, such as those of this node before it was killed and restarted
    (``apps.core.jobs.reconcile_jobs``). Idempotent: a job re-sent twice runs once."""
    from apps.core.jobs import reconcile_jobs

    return reconcile_jobs(worker=worker,
                          started_at=datetime.fromisoformat(started_at) if started_at else None)
