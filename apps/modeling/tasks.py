"""Celery interfaces of the modeling app (STYLE S8): ids in, one service call."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.jobs import TRANSIENT_ERRORS

logger = logging.getLogger("modeling.tasks")


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30,
             retry_backoff_max=900, retry_jitter=True, max_retries=5,
             soft_time_limit=3000, time_limit=3600)
def train_model_task(tenant_id: int, run_id: int) -> None:
    """Run one ``TrainingRun``. Idempotent: a finished run is skipped (claim_job), and a run
    registers at most one version (checked under a row lock), so ``acks_late`` with
    redelivery after a killed worker is safe; the active model changes only in the final
    transaction."""
    from apps.modeling.services import execute_training_run

    execute_training_run(tenant_id=tenant_id, run_id=run_id)


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=10, retry_jitter=True,
             max_retries=3, soft_time_limit=120, time_limit=180)
def start_due_retrains_task() -> int:
    """Beat: start the retrains debounced after erasures and withdrawals. Idempotent:
    requests coalesce into one pending run per tenant."""
    from apps.modeling.services import start_due_retrains

    return start_due_retrains()


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=10, retry_jitter=True,
             max_retries=3, soft_time_limit=300, time_limit=360)
def schedule_training_task() -> int:
    """Beat (nightly): one training run per active tenant with events. Idempotent: a
    tenant's pending run is reused."""
    from apps.modeling.services import schedule_training_for_all

    return schedule_training_for_all()
