"""The privacy app's subject data (DESIGN "Declarations").

* The export files and the portal sessions are subject data: erased.
* ``PrivacyRequest`` and ``ErasureTombstone`` are *kept as proof*: a record that the request
  was made and answered must be kept (CCPA regulations §7101: 24 months; GDPR Art. 5(2)
  accountability and Art. 17(3)(b)/(e)), and the tombstone is what lets an erasure be
  replayed after a restore. The erasure check allows exactly their ``subject_key`` column.
  Both are still exported to the subject.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from apps.core.subject_data import (
    Expiry,
    ModelEffect,
    PeriodOf,
    PurgeResult,
    RetentionRule,
    SubjectDataStore,
    declare,
    describe_period,
    kept_as_proof,
    not_applicable,
    removed_with_inactive_subjects,
    subject_rows,
)
from apps.privacy.models import DataExport, ErasureTombstone, PortalSession, PrivacyRequest
from apps.privacy.services.export import EXPORT_TTL
from apps.tenants.models import Tenant

_NOTHING_TO_CORRECT = not_applicable("A record of what happened: there is nothing in it to "
                                     "correct.")


# --- Export files -------------------------------------------------------------------------


def _export_files(tenant: Tenant, subject_key: str) -> list[dict[str, Any]]:
    return list(DataExport.objects.for_tenant(tenant)
                .filter(privacy_request__subject_key=subject_key)
                .order_by("pk")
                .values("privacy_request__reference", "created_at", "expires_at",
                        "downloaded_at", "deleted_at", "size"))


def _erase_export_files(tenant: Tenant, subject_key: str) -> int:
    from apps.privacy.services import delete_export_files

    return delete_export_files(tenant=tenant, subject_key=subject_key)


def _expired_exports(tenant: Tenant, cutoff: datetime) -> QuerySet[DataExport]:
    """Export files still on disk whose expiry has passed. Each export's ``expires_at`` is
    made + ``EXPORT_TTL`` (the 7 days of this policy), so with ``cutoff = run time - 7 days``
    this is ``expires_at <= run time``."""
    return DataExport.objects.for_tenant(tenant).filter(
        deleted_at__isnull=True, expires_at__lte=cutoff + EXPORT_TTL)


def _purge_exports(tenant: Tenant, cutoff: datetime, batch_size: int,
                   state: dict[str, Any]) -> PurgeResult:
    """The files of exactly the expired exports, through ``delete_export_files`` (files,
    download tokens, contact; the row stays with the request's record). A handful of files
    a day: one batch."""
    from apps.privacy.services import delete_export_files

    deleted = delete_export_files(tenant=tenant, now=cutoff + EXPORT_TTL)
    return PurgeResult(deleted=deleted, done=True)


def _exports_text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("Prepared copies are deleted %(period)s after they are made.") % {
        "period": describe_period(period("exports"))}


# --- Portal sessions ----------------------------------------------------------------------


_export_sessions, _erase_sessions = subject_rows(PortalSession, (
    "verification_method", "created_at", "expires_at"))


# --- Requests and tombstones (kept as proof) ----------------------------------------------


def _export_requests(tenant: Tenant, subject_key: str) -> list[dict[str, Any]]:
    """The requests, and for an erasure the state of its receipt's model section ("model
    update pending" or "final", and its sentence)."""
    rows = []
    for row in (PrivacyRequest.objects.for_tenant(tenant).filter(subject_key=subject_key)
                .order_by("received_at", "pk")
                .values("reference", "kind", "regime", "channel", "status", "received_at",
                        "due_at", "extended_at", "extension_reason", "verified_at",
                        "completed_at", "rejected_at", "rejection_reason", "result")):
        receipt = (row.pop("result") or {}).get("receipt")
        model = receipt.get("model") if isinstance(receipt, dict) else None
        row["erasure_model_update"] = model.get("label") if isinstance(model, dict) else None
        row["erasure_model_update_text"] = (model.get("text") if isinstance(model, dict)
                                            else None)
        rows.append(row)
    return rows


def _expired_requests(tenant: Tenant, cutoff: datetime) -> QuerySet[PrivacyRequest]:
    """Request records closed before the cutoff; deleting one takes what hangs off it
    (verification challenges, fulfilment jobs, the export row whose file the ``exports``
    category deleted earlier in the run); tombstones stay (their link is set to null)."""
    return PrivacyRequest.objects.for_tenant(tenant).filter(closed_at__lt=cutoff)


def _requests_text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("Records of your privacy requests are kept for %(period)s after they "
                   "close (CCPA regulations §7101), then deleted.") % {
        "period": describe_period(period("closed_privacy_requests"))}


def _export_tombstones(tenant: Tenant, subject_key: str) -> list[dict[str, Any]]:
    return list(ErasureTombstone.objects.for_tenant(tenant).filter(subject_key=subject_key)
                .order_by("erased_at").values("erased_at"))


def _expired_tombstones(tenant: Tenant, cutoff: datetime) -> QuerySet[ErasureTombstone]:
    return ErasureTombstone.objects.for_tenant(tenant).filter(erased_at__lt=cutoff)


def _tombstones_text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("Kept so that an erasure is repeated if a backup is ever restored, for "
                   "%(period)s after the erasure; it holds only a pseudonym.") % {
        "period": describe_period(period("erasure_tombstones"))}


def _sessions_text(tenant: Tenant, period: PeriodOf) -> str:
    return gettext("A portal session ends after 30 minutes and is deleted within the hour.")


declare(
    SubjectDataStore(
        name="privacy.exports",
        category=gettext_noop("copies of your data prepared for download"),
        models=(), order=50,
        export=_export_files, erase=_erase_export_files,
        restrict=not_applicable("A copy the subject asked for; it is deleted 7 days after "
                                "it is made."),
        rectify=not_applicable("A copy of the other stores: corrections are made there."),
        retention=RetentionRule(
            category="exports", text=_exports_text,
            expiry=Expiry(
                label=gettext_lazy("Data exports"),
                description=gettext_lazy(
                    "Export files of access and portability requests are deleted when "
                    "they expire, 7 days after they are made (the privacy app's expiry; "
                    "the row stays with the request's record)."),
                default_days=EXPORT_TTL.days, order=40, expired=_expired_exports,
                purge=_purge_exports, settable=False),
            dated=True),
        model_effect=ModelEffect.NONE,
        verify_erased=not_applicable("The privacy app's own check of its export directory "
                                     "(privacy.export_files) covers these files."),
    ),
    SubjectDataStore(
        name="privacy.portal_session",
        category=gettext_noop("privacy portal sessions"),
        models=("privacy.PortalSession",), order=60,
        export=_export_sessions, erase=_erase_sessions,
        restrict=not_applicable("A sign-in to the privacy portal, used for nothing else; "
                                "it ends after 30 minutes."),
        rectify=_NOTHING_TO_CORRECT,
        retention=removed_with_inactive_subjects(
            _sessions_text,
            how="Deleted by the privacy app's hourly housekeeping, and with inactive "
                "subjects."),
        model_effect=ModelEffect.NONE,
    ),
    SubjectDataStore(
        name="privacy.request",
        category=gettext_noop("your privacy requests"),
        models=("privacy.PrivacyRequest",), order=990,
        export=_export_requests,
        erase=kept_as_proof("CCPA regulations §7101; GDPR Art. 5(2)"),
        restrict=not_applicable("The record of the requests themselves, kept for their "
                                "legal period whatever the subject asks."),
        rectify=_NOTHING_TO_CORRECT,
        retention=RetentionRule(
            category="closed_privacy_requests", text=_requests_text,
            expiry=Expiry(
                label=gettext_lazy("Closed privacy requests"),
                description=gettext_lazy(
                    "Records of privacy requests are deleted this long after they were "
                    "closed. Default 24 months (CCPA regulations §7101; 731 days)."),
                default_days=731, order=50, expired=_expired_requests),
            dated=True),
        model_effect=ModelEffect.NONE,
    ),
    SubjectDataStore(
        name="privacy.tombstone",
        category=gettext_noop("record that your data was erased"),
        models=("privacy.ErasureTombstone",), order=995,
        export=_export_tombstones,
        erase=kept_as_proof("GDPR Art. 17 and 5(2): replays the erasure after a restore"),
        restrict=not_applicable("Holds only a pseudonym, kept to repeat an erasure."),
        rectify=_NOTHING_TO_CORRECT,
        retention=RetentionRule(
            category="erasure_tombstones", text=_tombstones_text,
            expiry=Expiry(
                label=gettext_lazy("Erasure tombstones"),
                description=gettext_lazy(
                    "The record that a subject was erased (a pseudonym), replayed after a "
                    "restore, is deleted this long after the erasure. Keep it at least as "
                    "long as your oldest backup. Default 3 years (1096 days)."),
                default_days=3 * 365 + 1, order=60, expired=_expired_tombstones),
            dated=True),
        model_effect=ModelEffect.NONE,
    ),
)
