"""Access (GDPR Art. 15 / CCPA right to know) and portability (Art. 20): every registered
handler's ``export`` as one checkpointed step of the request's job, packaged into a zip
(JSON with its schema, CSV, a README), and the single-use download links to it."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import secrets
import zipfile
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.core.jobs import finish_job
from apps.core.subject_data import SubjectDataStore, retention_notice, subject_data_stores
from apps.privacy.kinds import kind_values
from apps.privacy.models import DataExport, FulfilmentJob, PrivacyRequest
from apps.privacy.services.jobs import begin_job, run_step, steps_of
from apps.privacy.services.lifecycle import (
    Status,
    lock_request,
    transition_privacy_request,
    wipe_contact,
)
from apps.privacy.services.notifications import download_url, notify_subject
from apps.tenants.crypto import decrypt_secret, encrypt_secret
from apps.tenants.models import Tenant

if TYPE_CHECKING:
    from apps.modeling.services import ServingAlgorithm

EXPORT_ROOT = "privacy-exports"
EXPORT_TTL = timedelta(days=7)
EXPORT_SCHEMA = "discreet.subject-export/1"


def export_dir(pr: PrivacyRequest) -> str:
    return f"{EXPORT_ROOT}/{pr.tenant_id}/{pr.reference}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _part_path(pr: PrivacyRequest, handler: SubjectDataStore) -> str:
    return f"{export_dir(pr)}/parts/{_safe(handler.name)}.json"


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


def _export_part(pr: PrivacyRequest, handler: SubjectDataStore) -> dict[str, Any]:
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


def recommender_logic(tenant: Tenant, served: ServingAlgorithm | None) -> str:
    """Art. 15(1)(h): the logic of the recommender in plain words, with this tenant's
    weights: that of the algorithm that serves now (``served``: ``serving_algorithm``,
    ``None`` when no model is active)."""
    from apps.events.selectors import get_event_schema

    schema = get_event_schema(tenant=tenant)
    weights = ", ".join(
        f"'{code}' counts {'as its value (e.g. a rating)' if spec.weight_from_value else f'{spec.weight:g}'}"  # noqa: E501
        for code, spec in sorted(schema.types.items()))
    return render_to_string("privacy/recommender_logic.txt", {
        "tenant": tenant, "weights": weights,
        "logic": served.logic if served is not None else ""}).strip()


def _retention(tenant: Tenant, handler: SubjectDataStore) -> dict[str, Any]:
    notice = retention_notice(handler, tenant)
    return {"text": notice.text, "days": notice.days}


def _package(pr: PrivacyRequest) -> dict[str, Any]:
    from apps.modeling.services import serving_algorithm

    tenant = pr.tenant
    served = serving_algorithm(tenant=tenant)
    now = timezone.now()
    categories, files = [], {}
    for handler in subject_data_stores():
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
        "recommender": served.as_dict() if served is not None else None,
        "recommender_logic": recommender_logic(tenant, served),
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
    path = f"{export_dir(pr)}/discreet-export-{tenant.slug}-{pr.reference[:8]}.zip"
    _write(path, content)
    token = secrets.token_urlsafe(24)
    DataExport.objects.for_tenant(pr.tenant_id).filter(privacy_request=pr).delete()
    export = DataExport.objects.create(
        tenant_id=pr.tenant_id, privacy_request=pr, path=path, size=len(content),
        sha256=hashlib.sha256(content).hexdigest(), token_hash=_token_hash(token),
        token_ciphertext=encrypt_secret(token.encode()),
        link_expires_at=now + EXPORT_TTL, expires_at=now + EXPORT_TTL)
    for handler in subject_data_stores():
        part = _part_path(pr, handler)
        if default_storage.exists(part):
            default_storage.delete(part)
    audit.record(tenant, "privacy.export_created", None, pr,
                 {"reference": pr.reference[:8], "size": export.size,
                  "categories": {c["handler"]: c["count"] for c in categories}})
    return {"size": export.size, "sha256": export.sha256}


def export_subject_data(*, job: FulfilmentJob) -> None:
    """The access and portability kinds' job (kinds table): every handler's export, the
    package, and the download link to the subject. Resumable: see :mod:`.jobs`."""
    pr = begin_job(job)
    if pr is not None:
        run_export(job, pr)


def run_export(job: FulfilmentJob, pr: PrivacyRequest) -> None:
    for handler in subject_data_stores():
        run_step(job, f"export:{handler.name}",
                  lambda h=handler: _export_part(pr, h))
    run_step(job, "export:package", lambda: _package(pr))
    with transaction.atomic():
        locked = lock_request(pr)
        if locked.status != Status.IN_PROGRESS:
            finish_job(job, outcome=f"request already {locked.status}")
            return
        export = DataExport.objects.for_tenant(pr.tenant_id).get(privacy_request=locked)
        steps = steps_of(locked)
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
    now = now or timezone.now()
    exports = DataExport.objects.for_tenant(tenant).filter(deleted_at__isnull=True)
    if subject_key is None:
        exports = exports.filter(expires_at__lte=now)
    else:
        exports = exports.filter(privacy_request__subject_key=subject_key)
    deleted = 0
    for export in exports.select_related("privacy_request", "privacy_request__tenant"):
        _delete_tree(export_dir(export.privacy_request))
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
                subject_key=subject_key,
                kind__in=kind_values(predicate=lambda k: k.produces_export)):
            _delete_tree(export_dir(pr))
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
        "recommender": {
            "type": ["object", "null"],
            "description": "the algorithm that serves recommendations now (null: no model "
                           "is active, everyone is shown popular items)",
            "properties": {"model_version": {"type": "integer"},
                           "algorithm": {"type": "string"}, "label": {"type": "string"}}},
        "recommender_logic": {"type": "string"},
        "source": {"type": "string"},
        "recipients": {"type": "string"},
        "rights": {"type": "string"},
    },
}
