"""Fulfilment: running the job of one access, portability or erasure request.

Access, portability and erasure run in a :class:`FulfilmentJob` (a durable job, DESIGN
"Tasks"; steps and checkpoints: :mod:`apps.privacy.services.jobs`). The work itself lives by
responsibility: :mod:`~apps.privacy.services.erasure`, :mod:`~apps.privacy.services.export`;
restriction, objection, opt-out and limit (:mod:`~apps.privacy.services.flags`) and
rectification (:mod:`~apps.privacy.services.rectification`) are applied at once through the
consent (and events) services in the transaction that verifies the request.
"""

from __future__ import annotations

from django.db import transaction

from apps.core.jobs import fail_job, finish_job
from apps.privacy.models import FulfilmentJob, PrivacyRequest
from apps.privacy.services.erasure import begin_erasure, erase_with_handler, run_erasure
from apps.privacy.services.export import (
    EXPORT_ROOT,
    EXPORT_TTL,
    delete_export_files,
    run_export,
)
from apps.privacy.services.requests import (
    Kind,
    Status,
    lock_request,
    transition_privacy_request,
)

# Imported from here by modules outside this split (the subject-data rework owns them:
# ``maintenance``, ``erasure_check``, ``handlers``, ``retention.categories``); their home is
# ``erasure``/``export``.
__all__ = ["EXPORT_ROOT", "EXPORT_TTL", "delete_export_files", "erase_with_handler",
           "run_fulfilment"]


def run_fulfilment(*, job: FulfilmentJob) -> FulfilmentJob:
    """Run (or resume) one claimed job. Idempotent: finished steps are skipped, a closed
    request finishes the job without work, an unverified one fails it without releasing or
    erasing anything."""
    with transaction.atomic():
        pr = lock_request(job.privacy_request)
        if pr.status in PrivacyRequest.CLOSED_STATUSES:
            finish_job(job, outcome=f"request already {pr.status}")
            return job
        if pr.status == Status.VERIFIED:
            transition_privacy_request(pr, to=Status.IN_PROGRESS)
            if pr.kind == Kind.ERASURE:
                begin_erasure(pr)
        elif pr.status != Status.IN_PROGRESS:
            # Unverified requests release nothing and erase nothing.
            fail_job(job, f"request is {pr.status}, not verified", retryable=False)
            return job
    if pr.kind == Kind.ERASURE:
        run_erasure(job, pr)
    elif pr.kind in {Kind.ACCESS, Kind.PORTABILITY}:
        run_export(job, pr)
    else:
        fail_job(job, f"no job work for {pr.kind} requests", retryable=False)
    return job
