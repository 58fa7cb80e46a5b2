"""Fulfilment: what happens once a request is verified, read from the kinds table.

A kind's fulfil function (:mod:`apps.privacy.kinds`) either runs at once, in the transaction
that verifies the request (restriction, objection, opt-out, limit: :mod:`.flags`;
rectification: :mod:`.rectification`), or in a durable :class:`FulfilmentJob` sent after
commit (access and portability: :mod:`.export`; erasure: :mod:`.erasure`; steps and
checkpoints: :mod:`.jobs`). Nothing here knows a kind by name: a kind the table does not
hold is refused.
"""

from __future__ import annotations

from typing import Any

from apps.core.exceptions import ApplicationError
from apps.core.jobs import fail_job
from apps.privacy.kinds import get_kind
from apps.privacy.models import FulfilmentJob, PrivacyRequest
from apps.privacy.services.jobs import enqueue_fulfilment


def dispatch_fulfilment(*, privacy_request: PrivacyRequest, actor: Any = None) -> None:
    """Fulfil a verified (locked) request, inside the caller's transaction: the kind's
    fulfil function at once, or its durable job, sent to the worker after commit. A kind
    the table does not hold is refused (``ApplicationError``), which rolls the caller's
    transaction back."""
    policy = get_kind(privacy_request.kind)
    if policy.as_job:
        enqueue_fulfilment(privacy_request=privacy_request, actor=actor)
    else:
        policy.fulfil_function(privacy_request=privacy_request, actor=actor)


def run_fulfilment(*, job: FulfilmentJob) -> FulfilmentJob:
    """Run (or resume) one claimed job with its kind's job function. Idempotent: finished
    steps are skipped, a closed request finishes the job without work, an unverified one
    fails it without releasing or erasing anything. A job whose kind has no job work in the
    table fails for good."""
    kind = job.privacy_request.kind
    try:
        policy = get_kind(kind)
        if not policy.as_job:
            raise ApplicationError(f"no job work for {kind} requests", code="unmapped_kind")
        work = policy.fulfil_function
    except ApplicationError as exc:
        fail_job(job, exc.message, retryable=False)
        return job
    work(job=job)
    return job
