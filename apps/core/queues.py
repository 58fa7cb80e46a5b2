"""Celery queues by workload, declared once.

Tasks are routed by the module they live in, so a new task lands on its workload's queue
without another edit. Queue names derive from ``CELERY_TASK_DEFAULT_QUEUE`` (``celery``
unless set): ``celery`` for the rest (audit, retention, sweeps, webhooks), ``celery.ingest``,
``celery.privacy`` and ``celery.training``. A worker started without ``-Q`` consumes them all
(``make run``, the tests); production runs one worker for everything but training and one for
training alone, so a long fit never delays an erasure (``docker/compose.yaml``, README
"Background work").

Pure Python on purpose: the settings import it.
"""

from __future__ import annotations

from enum import StrEnum


class Workload(StrEnum):
    INGEST = "ingest"      # work that follows ingestion (history caps)
    PRIVACY = "privacy"    # privacy requests: access, erasure, rectification, receipts
    TRAINING = "training"  # model fits and the schedulers that start them


TASK_WORKLOADS: dict[str, Workload] = {
    "apps.events.tasks.*": Workload.INGEST,
    "apps.privacy.tasks.*": Workload.PRIVACY,
    "apps.modeling.tasks.*": Workload.TRAINING,
}


def workload_queue(default_queue: str, workload: Workload) -> str:
    return f"{default_queue}.{workload.value}"


def queue_names(default_queue: str) -> list[str]:
    """Every queue, the default first."""
    return [default_queue, *(workload_queue(default_queue, w) for w in Workload)]


def task_routes(default_queue: str) -> dict[str, dict[str, str]]:
    """``CELERY_TASK_ROUTES``: a glob on the task's dotted name to its workload's queue."""
    return {pattern: {"queue": workload_queue(default_queue, workload)}
            for pattern, workload in TASK_WORKLOADS.items()}
