from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def sweep_stuck_jobs_task() -> dict[str, int]:
    """Beat, every minute: re-send durable jobs whose broker message was lost."""
    from apps.core.jobs import sweep_stuck_jobs

    return sweep_stuck_jobs()
