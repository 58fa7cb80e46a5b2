"""Webhook tasks (STYLE S8): thin interfaces over :mod:`apps.webhooks.services`."""

from __future__ import annotations

from celery import shared_task

from apps.core.jobs import TRANSIENT_ERRORS


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=5,
             retry_backoff_max=300, retry_jitter=True, max_retries=5,
             soft_time_limit=60, time_limit=90)
def deliver_webhook_task(tenant_id: int, job_id: int) -> None:
    """One attempt of one webhook delivery. Idempotent: a finished delivery, or one whose
    next attempt is not due yet, is left alone; the message id is the same on every
    attempt, so a receiver sees a duplicate as one event."""
    from apps.webhooks.services import deliver_webhook

    deliver_webhook(tenant_id=tenant_id, delivery_id=job_id)
