"""Celery interfaces of the events app (STYLE S8): ids in, one service call."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.jobs import TRANSIENT_ERRORS

logger = logging.getLogger("events.tasks")


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=5,
             retry_backoff_max=300, retry_jitter=True, max_retries=5, soft_time_limit=300,
             time_limit=360)
def enforce_history_cap_task(tenant_id: int, subject_keys: list[str] | None = None) -> None:
    """Keep at most the tenant's cap of events per subject, for ``subject_keys`` (the
    pseudonymous keys of a batch's subjects; ``None``: every subject of the tenant).

    Enqueued after commit by ingestion. Idempotent (a second run finds nothing over the
    cap), so ``acks_late`` is safe; a lost message is harmless because the subject's next
    batch enqueues it again.
    """
    from apps.events.services import enforce_history_cap
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
    if tenant is None:
        logger.warning("events.history_cap_tenant_missing tenant_id=%s", tenant_id)
        return
    enforce_history_cap(tenant=tenant, subject_keys=subject_keys)
