"""The Celery application. Configuration lives in Django settings under ``CELERY_*``."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_site.settings.local")

# Every task with ``tenant_id`` first runs inside that tenant's scope (apps.tenants.tasks).
app = Celery("discreet", task_cls="apps.tenants.tasks:TenantScopedTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _pin_blas_threads(**_: object) -> None:
    """Every worker child runs BLAS single-threaded (implicit's advice; measured 22x faster
    per request than its default threading on 2 cores)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")


@worker_ready.connect
def _reconcile_durable_jobs(sender: object = None, **_: object) -> None:
    """A worker that starts asks for the durable jobs orphaned by a dead worker (its own
    previous run above all: killed whole, its messages wait unacknowledged in the broker
    until the visibility timeout) to be re-sent now (``apps.core.jobs.reconcile_jobs``).
    Sent as a task, so the check runs where a worker answers the liveness broadcast."""
    from datetime import UTC, datetime

    hostname = str(getattr(sender, "hostname", "") or "")
    app.send_task("apps.core.tasks.reconcile_jobs_task",
                  kwargs={"worker": hostname, "started_at": datetime.now(UTC).isoformat()})
