"""Fulfilment: running every registered subject handler for one request.

Access, portability and erasure run in a :class:`FulfilmentJob` (a durable job, DESIGN
"Tasks"). Each handler is one *step*: its work and its checkpoint (``progress["steps"]``)
commit in one transaction, under a lock on the job row, so

* a worker killed mid-step rolls the step back and the redelivered (or swept) job redoes
  exactly that step;
* a finished step is never run again, by the same job or by a concurrent duplicate.

Restriction, objection, opt-out, limit and rectification are applied at once through the
consent (and events) services in the transaction that verifies the request.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import re
import secrets
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.core.jobs import enqueue_job, fail_job, finish_job
from apps.privacy.models import DataExport, ErasureTombstone, FulfilmentJob, PrivacyRequest
from apps.privacy.registry import (
    SubjectDataHandler,
    erasure_describers,
    retention_rule,
    subject_handlers,
)
from apps.privacy.services.notifications import download_url, notify_subject
from apps.privacy.services.requests import (
    CONSENT_SOURCES,
    Kind,
    Status,
    lock_request,
    transition_privacy_request,
)
from apps.tenants.crypto import decrypt_secret, encrypt_secret
from apps.tenants.models import Tenant

logger = logging.getLogger("privacy.fulfilment")

EXPORT_ROOT = "privacy-exports"
EXPORT_TTL = timedelta(days=7)
EXPORT_SCHEMA = "discreet.subject-export/1"
ACTIVE_JOB = [FulfilmentJob.Status.PENDING, FulfilmentJob.Status.RUNNING]


# --- Jobs --------------------------------------------------------------------------------------


def enqueue_fulfilment(*, privacy_request: PrivacyRequest, actor: Any = None) -> FulfilmentJob:
    """The request's active job, or a new one sent to the worker after commit."""
    pr = privacy_request
    active = (FulfilmentJob.objects.for_tenant(pr.tenant_id)
              .filter(privacy_request=pr, status__in=ACTIVE_JOB).first())
    if active is not None:
        return active
    job = FulfilmentJob.objects.create(tenant_id=pr.tenant_id, privacy_request=pr)
    enqueue_job(job)
    return job


def cancel_jobs(*, privacy_request: PrivacyRequest) -> int:
    cancelled = 0
    for job in (FulfilmentJob.objects.for_tenant(privacy_request.tenant_id)
                .filter(privacy_request=privacy_request, status__in=ACTIVE_JOB)):
        fail_job(job, "cancelled: the request was closed", retryable=False)
        cancelled += 1
    return cancelled


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
                _begin_erasure(pr)
        elif pr.status != Status.IN_PROGRESS:
            # Unverified requests release nothing and erase nothing.
            fail_job(job, f"request is {pr.status}, not verified", retryable=False)
            return job
    if pr.kind == Kind.ERASURE:
        _run_erasure(job, pr)
    elif pr.kind in {Kind.ACCESS, Kind.PORTABILITY}:
        _run_export(job, pr)
    else:
        fail_job(job, f"no job work for {pr.kind} requests", retryable=False)
    return job


def _run_step(job: FulfilmentJob, name: str, work: Callable[[], dict[str, Any]],
              on_done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run ``work`` unless checkpoint ``name`` exists; the work, its checkpoint and
    ``on_done`` (the audit entry) commit together. Returns the checkpoint."""
    with transaction.atomic():
        locked = FulfilmentJob.objects.for_tenant(job.tenant_id).select_for_update().get(pk=job.pk)
        steps = dict(locked.progress.get("steps", {}))
        if name in steps:
            job.progress = locked.progress
            return steps[name]
        outcome = work()
        now = timezone.now()
        steps[name] = {**outcome, "at": now.isoformat()}
        locked.progress = {**locked.progress, "steps": steps, "last_step": name}
        locked.heartbeat_at = now
        locked.save(update_fields=["progress", "heartbeat_at", "updated_at"])
        job.progress, job.heartbeat_at = locked.progress, now
        if on_done is not None:
            on_done(steps[name])
        return steps[name]


def _steps_of(pr: PrivacyRequest) -> dict[str, dict[str, Any]]:
    """Checkpoints of every job of the request, merged (a re-run after a failed verification
    adds its counts to the first run's)."""
    merged: dict[str, dict[str, Any]] = {}
    for progress in (FulfilmentJob.objects.for_tenant(pr.tenant_id)
                     .filter(privacy_request=pr).order_by("created_at", "pk")
                     .values_list("progress", flat=True)):
        for name, step in (progress or {}).get("steps", {}).items():
            if name in merged and "count" in step:
                merged[name] = {**step, "count": merged[name].get("count", 0) + step["count"]}
            else:
                merged[name] = step
        for sweep in (progress or {}).get("sweeps", []):
            for name, count in sweep.items():
                if name in merged and "count" in merged[name]:
                    merged[name] = {**merged[name], "count": merged[name]["count"] + count}
    return merged


# --- Erasure -----------------------------------------------------------------------------------


def _begin_erasure(pr: PrivacyRequest) -> None:
    """First moment of an erasure (inside the transaction that starts it): the tombstone that
    lets a restore replay it, and a restriction that stops new data for the subject being
    stored while the handlers run (ingestion refuses events of restricted subjects)."""
    from apps.consent.services import set_restriction

    ErasureTombstone.objects.for_tenant(pr.tenant_id).get_or_create(
        tenant_id=pr.tenant_id, subject_key=pr.subject_key, privacy_request=pr,
        defaults={"erased_at": timezone.now()})
    set_restriction(tenant=pr.tenant, subject_key=pr.subject_key, restricted=True,
                    source=CONSENT_SOURCES[pr.channel])


def _model_versions(data: Any) -> list[str]:
    versions = data.get("model_versions") if isinstance(data, dict) else None
    if not isinstance(versions, list):
        return []
    return [str(v.get("model_version", v.get("number", "?")) if isinstance(v, dict) else v)
            for v in versions]


def _describe(pr: PrivacyRequest) -> dict[str, Any]:
    """Before anything is erased: what the receipt must name afterwards. Registered
    describers (by handler name), plus, for a handler without one that keeps data outside
    tables (``models=()``: model artifacts, files), the model versions its export lists."""
    details: dict[str, Any] = {}
    versions: list[str] = []
    for name, describer in erasure_describers().items():
        try:
            details[name] = describer(pr.tenant, pr.subject_key)
        except Exception:  # a description is for the receipt; it must not block erasure
            logger.exception("privacy.erasure_describer_failed name=%s", name)
            details[name] = {"error": "could not be described"}
        versions += _model_versions(details[name])
    described = erasure_describers()
    for handler in subject_handlers():
        if handler.models or handler.name in described:
            continue
        try:
            versions += _model_versions(handler.export(pr.tenant, pr.subject_key))
        except Exception:
            logger.exception("privacy.erasure_describe_failed handler=%s", handler.name)
    return {"details": json.loads(json.dumps(details, cls=DjangoJSONEncoder)),
            "model_versions": list(dict.fromkeys(versions))}


def erase_with_handler(handler: SubjectDataHandler, tenant: Tenant, subject_key: str) -> int:
    return int(handler.erase(tenant, subject_key) or 0)


def _run_erasure(job: FulfilmentJob, pr: PrivacyRequest) -> None:
    tenant = pr.tenant
    _run_step(job, "describe", lambda: _describe(pr))
    for handler in subject_handlers():
        def work(h: SubjectDataHandler = handler) -> dict[str, Any]:
            return {"count": erase_with_handler(h, tenant, pr.subject_key),
                    "category": h.category}

        def audit_step(step: dict[str, Any], h: SubjectDataHandler = handler) -> None:
            audit.record(tenant, "privacy.erasure_step", None, pr,
                         {"handler": h.name, "category": h.category, "count": step["count"],
                          "reference": pr.reference[:8]})

        _run_step(job, handler.name, work, audit_step)
    from apps.privacy.services.erasure_check import verify_erasure

    check = verify_erasure(privacy_request=pr)
    if check.hits:
        # Something came back or was left (data arriving while the handlers ran, a file a
        # handler removes only after its commit): every handler once more, then look again.
        _sweep(job, pr)
        check = verify_erasure(privacy_request=pr)
    if check.hits:
        with transaction.atomic():
            locked = lock_request(pr)
            locked.last_error = (f"erasure verification found the subject in "
                                 f"{len(check.hits)} place(s)")
            locked.save(update_fields=["last_error", "updated_at"])
            # Retryable: the sweeper runs the job again later (sweep + check), up to
            # max_attempts; then it is failed for good, visibly, and the request stays open.
            fail_job(job, locked.last_error, retryable=True)
        logger.error("privacy.erasure_not_verified id=%s hits=%s", pr.pk, len(check.hits))
        return
    with transaction.atomic():
        locked = lock_request(pr)
        if locked.status != Status.IN_PROGRESS:
            finish_job(job, outcome=f"request already {locked.status}")
            return
        receipt = build_receipt(locked, check.as_dict())
        locked.result = {**locked.result, "receipt": receipt}
        locked.last_error = ""
        locked.save(update_fields=["result", "last_error", "updated_at"])
        audit.record(locked.tenant, "privacy.erasure_receipt", None, locked,
                     {"reference": locked.reference[:8], "total": receipt["total"],
                      "categories": {c["handler"]: c["count"] for c in receipt["categories"]},
                      "model_versions": receipt["model_versions"]})
        notify_subject(locked, "completed", {"receipt": receipt})
        transition_privacy_request(locked, to=Status.COMPLETED)
        finish_job(job, outcome="erased", total=receipt["total"])


def _sweep(job: FulfilmentJob, pr: PrivacyRequest) -> None:
    """Run every handler's erase again (each is idempotent); the counts are kept beside the
    checkpoints and added to the receipt."""
    counts: dict[str, int] = {}
    for handler in subject_handlers():
        with transaction.atomic():
            counts[handler.name] = erase_with_handler(handler, pr.tenant, pr.subject_key)
    with transaction.atomic():
        locked = FulfilmentJob.objects.for_tenant(job.tenant_id).select_for_update().get(pk=job.pk)
        locked.progress = {**locked.progress,
                           "sweeps": [*locked.progress.get("sweeps", []), counts]}
        locked.save(update_fields=["progress", "updated_at"])
        job.progress = locked.progress
        audit.record(pr.tenant, "privacy.erasure_sweep", None, pr,
                     {"reference": pr.reference[:8],
                      "counts": {k: v for k, v in counts.items() if v}})


def build_receipt(pr: PrivacyRequest, check: dict[str, Any]) -> dict[str, Any]:
    """What was erased: categories and counts, model versions touched, when, and the
    verification that found nothing left. Holds no identifier."""
    steps = _steps_of(pr)
    handlers = {h.name: h for h in subject_handlers()}
    categories = [
        {"handler": name, "category": step.get("category", handlers.get(name, name)),
         "count": int(step.get("count", 0))}
        for name, step in steps.items() if name != "describe" and "count" in step
    ]
    versions = [str(v) for v in steps.get("describe", {}).get("model_versions", [])]
    return {
        "reference": pr.reference,
        "received_at": pr.received_at.isoformat(),
        "started_at": pr.started_at.isoformat() if pr.started_at else None,
        "completed_at": timezone.now().isoformat(),
        "categories": categories,
        "total": sum(c["count"] for c in categories),
        "model_versions": versions,
        "details": steps.get("describe", {}).get("details", {}),
        "note": "Counts include the restriction recorded when the erasure started, which "
                "kept new data out while it ran.",
        "verification": {"hits": len(check.get("hits", [])),
                         "places_checked": len(check.get("places", [])),
                         "checked_at": check.get("checked_at")},
    }


# --- Access and portability --------------------------------------------------------------------


def _export_dir(pr: PrivacyRequest) -> str:
    return f"{EXPORT_ROOT}/{pr.tenant_id}/{pr.reference}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _part_path(pr: PrivacyRequest, handler: SubjectDataHandler) -> str:
    return f"{_export_dir(pr)}/parts/{_safe(handler.name)}.json"


def _write(path: str, content: bytes) -> None:
    if default_storage.exists(path):
        default_storage.delete(path)
    saved = default_storage.save(path, ContentFile(content))
    if saved != path:  # pragma: no cover - a storage that renamed despite the delete
        raise RuntimeError("export storage renamed a file")


def _rows(data: Any) -> list[Any]:
    if isinstance(data, list | tuple):
        return list(data)
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        return list(data["rows"])
    if isinstance(data, dict):
        return [data] if data else []
    return [] if data is None else [{"value": data}]


def _export_part(pr: PrivacyRequest, handler: SubjectDataHandler) -> dict[str, Any]:
    data = handler.export(pr.tenant, pr.subject_key)
    encoded = json.dumps(data, cls=DjangoJSONEncoder).encode()
    _write(_part_path(pr, handler), encoded)
    return {"count": len(_rows(data)), "category": handler.category}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = (json.dumps(value, cls=DjangoJSONEncoder)
            if isinstance(value, dict | list) else str(value))
    # Spreadsheets run cells that start like a formula; the JSON file keeps the exact value.
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def to_csv(data: Any) -> str:
    rows = [r if isinstance(r, dict) else {"value": r} for r in _rows(data)]
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(fields or ["value"])
    for row in rows:
        writer.writerow([_cell(row.get(f)) for f in fields])
    return out.getvalue()


def _purposes(tenant: Tenant) -> list[dict[str, Any]]:
    from apps.consent.selectors import get_current_notices, list_purposes

    notices = get_current_notices(tenant=tenant)
    return [{
        "key": p.key, "name": p.name, "description": p.description,
        "legal_basis": p.legal_basis, "sale_or_sharing": p.is_sale_or_sharing,
        "uses_sensitive_data": p.uses_sensitive_data, "aggregate_only": p.aggregate_only,
        "notice_version": notices[p.pk].version if p.pk in notices else None,
        "notice_text": notices[p.pk].text if p.pk in notices else None,
    } for p in list_purposes(tenant=tenant)]


def recommender_logic(tenant: Tenant) -> str:
    """Art. 15(1)(h): the logic of the recommender in plain words, with this tenant's
    weights."""
    from apps.events.selectors import get_event_schema

    schema = get_event_schema(tenant=tenant)
    weights = ", ".join(
        f"'{code}' counts {'as its value (e.g. a rating)' if spec.weight_from_value else f'{spec.weight:g}'}"  # noqa: E501
        for code, spec in sorted(schema.types.items()))
    return render_to_string("privacy/recommender_logic.txt",
                            {"tenant": tenant, "weights": weights}).strip()


def _retention(tenant: Tenant, handler: SubjectDataHandler) -> dict[str, Any]:
    rule = retention_rule(tenant, handler.name)
    if rule is None:
        return {"text": "Kept while you use the service, and deleted when you ask us to "
                        "erase your data.", "days": None}
    return {"text": rule.text, "days": rule.days}


def _package(pr: PrivacyRequest) -> dict[str, Any]:
    tenant = pr.tenant
    now = timezone.now()
    categories, files = [], {}
    for handler in subject_handlers():
        path = _part_path(pr, handler)
        with default_storage.open(path, "rb") as part:
            data = json.loads(part.read())
        csv_name = f"{_safe(handler.name)}.csv"
        files[csv_name] = to_csv(data)
        categories.append({"handler": handler.name, "category": handler.category,
                           "count": len(_rows(data)), "csv": csv_name,
                           "retention": _retention(tenant, handler), "data": data})
    document = {
        "schema": EXPORT_SCHEMA,
        "generated_at": now.isoformat(),
        "controller": {"name": tenant.name, "contact_email": tenant.contact_email or None},
        "request": {"reference": pr.reference, "kind": pr.kind, "regime": pr.regime,
                    "received_at": pr.received_at.isoformat()},
        "categories": categories,
        "purposes": _purposes(tenant),
        "recommender_logic": recommender_logic(tenant),
        "source": f"Collected by {tenant.name} from your use of its website or app, under "
                  "a pseudonym; your name, email, IP address and browser are never stored "
                  "with it.",
        "recipients": "Discreet processes the data for the controller; it is not shared "
                      "with anyone else unless a purpose above says so.",
        "rights": "You can ask for a copy, correction, erasure or restriction of your data, "
                  "object to personalization, opt out of sale or sharing, and complain to a "
                  "supervisory authority.",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export.json", json.dumps(document, cls=DjangoJSONEncoder, indent=2))
        archive.writestr("export.schema.json", json.dumps(EXPORT_JSON_SCHEMA, indent=2))
        for name, content in files.items():
            archive.writestr(name, content)
        archive.writestr("README.txt", render_to_string("privacy/export_readme.txt", {
            "tenant": tenant, "document": document, "categories": categories}))
    content = buffer.getvalue()
    path = f"{_export_dir(pr)}/discreet-export-{tenant.slug}-{pr.reference[:8]}.zip"
    _write(path, content)
    token = secrets.token_urlsafe(24)
    DataExport.objects.for_tenant(pr.tenant_id).filter(privacy_request=pr).delete()
    export = DataExport.objects.create(
        tenant_id=pr.tenant_id, privacy_request=pr, path=path, size=len(content),
        sha256=hashlib.sha256(content).hexdigest(), token_hash=_token_hash(token),
        token_ciphertext=encrypt_secret(token.encode()),
        link_expires_at=now + EXPORT_TTL, expires_at=now + EXPORT_TTL)
    for handler in subject_handlers():
        part = _part_path(pr, handler)
        if default_storage.exists(part):
            default_storage.delete(part)
    audit.record(tenant, "privacy.export_created", None, pr,
                 {"reference": pr.reference[:8], "size": export.size,
                  "categories": {c["handler"]: c["count"] for c in categories}})
    return {"size": export.size, "sha256": export.sha256}


def _run_export(job: FulfilmentJob, pr: PrivacyRequest) -> None:
    for handler in subject_handlers():
        _run_step(job, f"export:{handler.name}",
                  lambda h=handler: _export_part(pr, h))
    _run_step(job, "export:package", lambda: _package(pr))
    with transaction.atomic():
        locked = lock_request(pr)
        if locked.status != Status.IN_PROGRESS:
            finish_job(job, outcome=f"request already {locked.status}")
            return
        export = DataExport.objects.for_tenant(pr.tenant_id).get(privacy_request=locked)
        steps = _steps_of(locked)
        locked.result = {**locked.result, "export": {
            "size": export.size, "sha256": export.sha256,
            "expires_at": export.expires_at.isoformat(),
            "categories": {name.removeprefix("export:"): step.get("count", 0)
                           for name, step in steps.items()
                           if name.startswith("export:") and name != "export:package"},
        }}
        locked.save(update_fields=["result", "updated_at"])
        notify_subject(locked, "completed", {"download_url": _current_link(locked, export),
                                             "expires_at": export.link_expires_at})
        transition_privacy_request(locked, to=Status.COMPLETED)
        finish_job(job, outcome="exported", size=export.size)


# --- Downloads ---------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _current_link(pr: PrivacyRequest, export: DataExport, origin: str | None = None) -> str | None:
    if not export.token_ciphertext or not bytes(export.token_ciphertext):
        return None
    return download_url(pr, decrypt_secret(bytes(export.token_ciphertext)).decode(), origin)


def export_link(*, privacy_request: PrivacyRequest, origin: str | None = None) -> dict[str, Any]:
    """The live download link of a completed export (for the API and a verified portal
    session): ``{"url", "expires_at"}``, ``url`` None once used, expired or deleted."""
    export = DataExport.objects.for_tenant(privacy_request.tenant_id).filter(
        privacy_request=privacy_request).first()
    if export is None:
        return {"url": None, "expires_at": None, "available": False}
    live = (export.deleted_at is None and export.downloaded_at is None
            and export.link_expires_at > timezone.now())
    return {"url": _current_link(privacy_request, export, origin) if live else None,
            "expires_at": export.link_expires_at.isoformat(),
            "available": export.deleted_at is None, "downloaded": export.downloaded_at is not None}


@transaction.atomic
def reissue_download_link(*, privacy_request: PrivacyRequest, actor: Any = None) -> None:
    """A fresh single-use link to the same file (while it exists), emailed to the subject."""
    pr = privacy_request
    export = (DataExport.objects.for_tenant(pr.tenant_id).select_for_update()
              .filter(privacy_request=pr).first())
    now = timezone.now()
    if export is None or export.deleted_at is not None or export.expires_at <= now:
        raise ApplicationError("The export file no longer exists.", code="export_gone",
                               status_code=409)
    token = secrets.token_urlsafe(24)
    export.token_hash = _token_hash(token)
    export.token_ciphertext = encrypt_secret(token.encode())
    export.link_expires_at = export.expires_at
    export.downloaded_at = None
    export.save(update_fields=["token_hash", "token_ciphertext", "link_expires_at",
                               "downloaded_at", "updated_at"])
    notify_subject(pr, "download", {"download_url": download_url(pr, token),
                                    "expires_at": export.link_expires_at})


def open_download(*, tenant: Tenant, token: str) -> tuple[DataExport, Any] | None:
    """Spend a download link: the export and its open file, or ``None`` when the link is
    unknown, used or expired, or the file is gone (one answer for all)."""
    if not token or len(token) > 100:
        return None
    with transaction.atomic():
        export = (DataExport.objects.for_tenant(tenant).select_for_update(of=("self",))
                  .select_related("privacy_request").filter(token_hash=_token_hash(token))
                  .first())
        now = timezone.now()
        if (export is None or export.downloaded_at is not None or export.deleted_at is not None
                or export.link_expires_at <= now
                or export.privacy_request.status != Status.COMPLETED):
            return None
        export.downloaded_at = now
        export.token_ciphertext = b""
        export.save(update_fields=["downloaded_at", "token_ciphertext", "updated_at"])
        audit.record(tenant, "privacy.export_downloaded", "subject", export.privacy_request,
                     {"reference": export.privacy_request.reference[:8]})
    return export, default_storage.open(export.path, "rb")


def delete_export_files(*, tenant: Tenant, subject_key: str | None = None,
                        now: datetime | None = None) -> int:
    """Delete export files: the subject's (erasure), or every expired one (housekeeping,
    ``subject_key`` None). The row stays (it is part of the request's record); the contact
    is wiped with the file, as nothing more can be sent."""
    from apps.privacy.services.requests import wipe_contact

    now = now or timezone.now()
    exports = DataExport.objects.for_tenant(tenant).filter(deleted_at__isnull=True)
    if subject_key is None:
        exports = exports.filter(expires_at__lte=now)
    else:
        exports = exports.filter(privacy_request__subject_key=subject_key)
    deleted = 0
    for export in exports.select_related("privacy_request", "privacy_request__tenant"):
        _delete_tree(_export_dir(export.privacy_request))
        export.deleted_at = now
        export.token_ciphertext = b""
        export.save(update_fields=["deleted_at", "token_ciphertext", "updated_at"])
        wipe_contact(privacy_request=export.privacy_request)
        audit.record(tenant, "privacy.export_deleted", None, export.privacy_request,
                     {"reference": export.privacy_request.reference[:8],
                      "why": "expired" if subject_key is None else "erasure"})
        deleted += 1
    if subject_key is not None:  # parts of an export interrupted by the erasure
        for pr in PrivacyRequest.objects.for_tenant(tenant).filter(
                subject_key=subject_key, kind__in=[Kind.ACCESS, Kind.PORTABILITY]):
            _delete_tree(_export_dir(pr))
    return deleted


def _delete_tree(path: str) -> None:
    if not default_storage.exists(path):
        return
    dirs, files = default_storage.listdir(path)
    for name in files:
        default_storage.delete(f"{path}/{name}")
    for name in dirs:
        _delete_tree(f"{path}/{name}")
    with contextlib.suppress(OSError):  # a storage without directories
        default_storage.delete(path)


# --- Consent flags and rectification ----------------------------------------------------------


def _withdraw(pr: PrivacyRequest, keys: list[str], actor: Any) -> None:
    from apps.consent.services import record_consents

    if keys:
        record_consents(tenant=pr.tenant, subject_key=pr.subject_key,
                        decisions=dict.fromkeys(keys, False),
                        source=CONSENT_SOURCES[pr.channel], actor=actor,
                        method=f"privacy-request-{pr.kind}".replace("_", "-"))


def apply_consent_flags(*, privacy_request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """Restriction (Art. 18), objection (Art. 21), opt-out of sale/sharing and limit of
    sensitive data (CCPA), applied at once through the consent services. The "limit" right
    has no consent flag of its own: it withdraws every purpose flagged as using sensitive
    data. Runs inside the verifying transaction."""
    from apps.consent.selectors import list_purposes
    from apps.consent.services import record_objection, set_restriction

    pr = privacy_request
    transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
    source = CONSENT_SOURCES[pr.channel]
    outcome: dict[str, Any]
    if pr.kind == Kind.RESTRICTION:
        set_restriction(tenant=pr.tenant, subject_key=pr.subject_key, restricted=True,
                        source=source, actor=actor)
        outcome = {"restricted": True}
    elif pr.kind == Kind.OBJECTION:
        record_objection(tenant=pr.tenant, subject_key=pr.subject_key, source=source,
                         actor=actor)
        outcome = {"objected": True}
    else:
        purposes = list_purposes(tenant=pr.tenant)
        if pr.kind == Kind.OPT_OUT:
            keys = [p.key for p in purposes if p.is_sale_or_sharing]
        else:
            keys = [p.key for p in purposes if p.uses_sensitive_data]
        _withdraw(pr, keys, actor)
        outcome = {"withdrawn_purposes": keys}
    pr.result = {**pr.result, "applied": outcome}
    pr.save(update_fields=["result", "updated_at"])
    notify_subject(pr, "completed", {"applied": outcome})
    return transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)


def apply_rectification(*, privacy_request: PrivacyRequest, actor: Any = None,
                        payload: dict[str, Any] | None = None) -> PrivacyRequest:
    """Art. 16 / CCPA correct: new consent decisions and level (recorded in the ledger as
    the subject's own), and deletion of the chosen interactions from their history."""
    from apps.consent.services import record_consents
    from apps.events.selectors import list_subject_events

    pr = privacy_request
    changes = payload if payload is not None else dict(pr.payload)
    if pr.status == Status.VERIFIED:
        transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
    outcome: dict[str, Any] = {}
    consents, level = changes.get("consents") or {}, changes.get("level")
    if consents or level is not None:
        record_consents(tenant=pr.tenant, subject_key=pr.subject_key, decisions=consents,
                        level=level, source=CONSENT_SOURCES[pr.channel], actor=actor,
                        method="privacy-request-rectification")
        outcome["consents_changed"] = sorted(consents)
        if level is not None:
            outcome["level"] = level
    event_ids = changes.get("delete_events") or []
    if event_ids:
        # The events app has no service to delete chosen events; its selector's queryset is
        # the subject's own history in this tenant.
        deleted, _ = list_subject_events(tenant=pr.tenant, subject_key=pr.subject_key).filter(
            event_id__in=event_ids).delete()
        outcome["events_deleted"] = deleted
        audit.record(pr.tenant, "privacy.events_rectified", actor, pr,
                     {"reference": pr.reference[:8], "events_deleted": deleted})
    pr.result = {**pr.result, "rectification": outcome}
    pr.save(update_fields=["result", "updated_at"])
    notify_subject(pr, "completed", {"applied": outcome})
    return transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)


EXPORT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": EXPORT_SCHEMA,
    "title": "Discreet subject data export",
    "type": "object",
    "required": ["schema", "generated_at", "controller", "request", "categories", "purposes",
                 "recommender_logic"],
    "properties": {
        "schema": {"const": EXPORT_SCHEMA},
        "generated_at": {"type": "string", "format": "date-time"},
        "controller": {"type": "object", "properties": {
            "name": {"type": "string"}, "contact_email": {"type": ["string", "null"]}}},
        "request": {"type": "object", "properties": {
            "reference": {"type": "string"}, "kind": {"type": "string"},
            "regime": {"enum": ["gdpr", "ccpa"]},
            "received_at": {"type": "string", "format": "date-time"}}},
        "categories": {"type": "array", "items": {
            "type": "object", "required": ["handler", "category", "count", "csv", "data"],
            "properties": {
                "handler": {"type": "string", "description": "stable id of the data source"},
                "category": {"type": "string", "description": "what the data is"},
                "count": {"type": "integer", "minimum": 0},
                "csv": {"type": "string", "description": "the same rows as CSV in the zip"},
                "retention": {"type": "object", "properties": {
                    "text": {"type": "string"}, "days": {"type": ["integer", "null"]}}},
                "data": {"description": "rows (array of objects) or one object"},
            }}},
        "purposes": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string"}, "name": {"type": "string"},
            "description": {"type": "string"}, "legal_basis": {"type": "string"},
            "sale_or_sharing": {"type": "boolean"}, "uses_sensitive_data": {"type": "boolean"},
            "notice_version": {"type": ["string", "null"]},
            "notice_text": {"type": ["string", "null"]}}}},
        "recommender_logic": {"type": "string"},
        "source": {"type": "string"},
        "recipients": {"type": "string"},
        "rights": {"type": "string"},
    },
}
