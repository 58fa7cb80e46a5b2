"""The privacy app's registrations in its own registry (called from ``PrivacyConfig.ready``).

Its models that hold a subject key are covered consciously:

* ``PortalSession`` and the export files are subject data: erased.
* ``PrivacyRequest`` and ``ErasureTombstone`` are *exempt proof*: a record that the request
  was made and answered must be kept (CCPA regulations §7101: 24 months; GDPR Art. 5(2)
  accountability and Art. 17(3)(b)/(e)), and the tombstone is what lets an erasure be
  replayed after a restore. Their ``erase`` is a no-op returning 0; the erasure verifier
  allows exactly their ``subject_key`` column. Both are still exported to the subject.
"""

from __future__ import annotations

from typing import Any

from apps.privacy.registry import (
    RetentionRule,
    SubjectDataHandler,
    model_handler,
    register_erasure_verifier,
    register_retention_rule,
    register_subject_handler,
)
from apps.tenants.models import Tenant


def _export_files(tenant: Tenant, subject_key: str) -> list[dict[str, Any]]:
    from apps.privacy.models import DataExport

    return list(DataExport.objects.for_tenant(tenant)
                .filter(privacy_request__subject_key=subject_key)
                .order_by("pk")
                .values("privacy_request__reference", "created_at", "expires_at",
                        "downloaded_at", "deleted_at", "size"))


def _erase_export_files(tenant: Tenant, subject_key: str) -> int:
    from apps.privacy.services.fulfilment import delete_export_files

    return delete_export_files(tenant=tenant, subject_key=subject_key)


def _requests(tenant: Tenant, subject_key: str) -> list[dict[str, Any]]:
    from apps.privacy.models import PrivacyRequest

    return list(PrivacyRequest.objects.for_tenant(tenant).filter(subject_key=subject_key)
                .order_by("received_at", "pk")
                .values("reference", "kind", "regime", "channel", "status", "received_at",
                        "due_at", "extended_at", "extension_reason", "verified_at",
                        "completed_at", "rejected_at", "rejection_reason"))


def _tombstones(tenant: Tenant, subject_key: str) -> list[dict[str, Any]]:
    from apps.privacy.models import ErasureTombstone

    return list(ErasureTombstone.objects.for_tenant(tenant).filter(subject_key=subject_key)
                .order_by("erased_at").values("erased_at"))


def _kept_as_proof(tenant: Tenant, subject_key: str) -> int:
    return 0  # exempt proof: see the module docstring


def _events_rule(tenant: Tenant) -> RetentionRule:
    from apps.events.selectors import history_cap, retention_days

    days = retention_days(tenant)
    return RetentionRule(
        f"Interactions are kept at most {days} days, and only your newest "
        f"{history_cap(tenant)}; older ones are deleted automatically.", days)


_registered = False


def register() -> None:
    """Idempotent: an isolated app registry (tests) runs ``ready()`` a second time."""
    global _registered
    if _registered:
        return
    _registered = True
    from apps.privacy.models import ErasureTombstone, PortalSession, PrivacyRequest
    from apps.privacy.services.erasure_check import (
        caches_verifier,
        celery_results_verifier,
        export_files_verifier,
    )

    register_subject_handler(SubjectDataHandler(
        name="privacy.exports", category="copies of your data prepared for download",
        export=_export_files, erase=_erase_export_files, models=(), order=50))
    register_subject_handler(model_handler(
        PortalSession, category="privacy portal sessions",
        export_fields=["verification_method", "created_at", "expires_at"],
        order=60, name="privacy.portal_session"))
    register_subject_handler(SubjectDataHandler(
        name="privacy.request", category="your privacy requests",
        export=_requests, erase=_kept_as_proof, models=(PrivacyRequest._meta.label,),
        order=990))
    register_subject_handler(SubjectDataHandler(
        name="privacy.tombstone", category="record that your data was erased",
        export=_tombstones, erase=_kept_as_proof, models=(ErasureTombstone._meta.label,),
        order=995))

    register_erasure_verifier("privacy.export_files", export_files_verifier)
    register_erasure_verifier("privacy.caches", caches_verifier)
    register_erasure_verifier("privacy.celery_results", celery_results_verifier)

    rules = {
        "events.event": _events_rule,
        "consent.ledger": lambda t: RetentionRule(
            "Your history of choices is kept while you use the service, as proof of what "
            "you agreed to (GDPR Art. 7(1)), and deleted when your data is erased."),
        "consent.state": lambda t: RetentionRule(
            "Your current choices are kept while you use the service."),
        "consent.subject_state": lambda t: RetentionRule(
            "Your personalization level and flags are kept while you use the service."),
        "audit.subject_token": lambda t: RetentionRule(
            "Deleted when your data is erased; the audit entries it linked stay, "
            "anonymous."),
        "privacy.exports": lambda t: RetentionRule(
            "Prepared copies are deleted 7 days after they are made.", 7),
        "privacy.portal_session": lambda t: RetentionRule(
            "A portal session ends after 30 minutes and is deleted within the hour."),
        "privacy.request": lambda t: RetentionRule(
            "Records of your privacy requests are kept for 24 months after they close "
            "(CCPA regulations §7101), then deleted.", 730),
        "privacy.tombstone": lambda t: RetentionRule(
            "Kept so that an erasure is repeated if a backup is ever restored; it holds "
            "only a pseudonym."),
    }
    for name, rule in rules.items():
        register_retention_rule(name, rule, replace=False)
