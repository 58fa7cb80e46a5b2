from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _bump_catalog_stamp(tenant_id: int | None) -> None:
    from django.db.models import F

    from apps.modeling.models import ServingState

    if tenant_id is not None:
        ServingState.objects.for_tenant(tenant_id).update(catalog_stamp=F("catalog_stamp") + 1)


def _item_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Cache invalidation (STYLE S2): an item edited one by one (admin, deactivation)."""
    _bump_catalog_stamp(instance.tenant_id)


def _audit_written(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    """Cache invalidation: bulk catalog writes bypass model signals, but the catalog
    service audits every batch, so its audit entry is the signal."""
    if created and str(instance.action).startswith("catalog."):
        _bump_catalog_stamp(instance.tenant_id)


def _on_withdrawal(tenant_id: int, subject_keys: list[str], purposes: frozenset[str]) -> None:
    """Consent withdrawn: serving stops personalizing at once (it checks consent per
    request), and a retrain is asked for when the model is trained on the purpose. (A
    withdrawal of personalization also takes the subject below "full": the stop listener
    below takes them out of the live model at once.)"""
    from apps.events.selectors import get_event_schema
    from apps.modeling.models import TrainingRun
    from apps.modeling.services import request_retrain_later
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return
    trained_on = {spec.purpose for spec in get_event_schema(tenant=tenant).types.values()}
    if trained_on & set(purposes):
        request_retrain_later(tenant_id=tenant_id, reason=TrainingRun.Reason.WITHDRAWAL)


def _on_personalization_stopped(tenant_id: int, subject_keys: list[str]) -> None:
    """A subject's level left "full": they leave the live model before the call returns."""
    from apps.modeling.services import personalization_stopped

    personalization_stopped(tenant_id, subject_keys)


class ModelingConfig(AppConfig):
    name = "apps.modeling"
    label = "modeling"
    verbose_name = "Modeling"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from apps.consent.services import (
            register_personalization_stop_listener,
            register_withdrawal_listener,
        )
        from apps.modeling.blas import pin_blas_threads
        from apps.modeling.demo import seed_demo_model
        from apps.tenants.demo import register_demo_seeder

        # Web processes run BLAS single-threaded like the worker (platform_site/celery.py):
        # a ``recalculate_user`` request measured 22x slower at p50 with default threading.
        pin_blas_threads()
        # Activations and retirements write domain audit entries themselves (with the
        # actor), so ModelVersion is not registered with django-auditlog.
        # Its subject data (the artifacts) is declared in apps/modeling/subject_data.py.
        register_withdrawal_listener(_on_withdrawal)
        register_personalization_stop_listener(_on_personalization_stopped)
        register_demo_seeder(seed_demo_model)
        # Senders named by label: another app's models are not imported (import contracts).
        post_save.connect(_item_saved, sender="events.Item", dispatch_uid="modeling.item_saved")
        post_save.connect(_audit_written, sender="audit.AuditEvent",
                          dispatch_uid="modeling.catalog_audited")
