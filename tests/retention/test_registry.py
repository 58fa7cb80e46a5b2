"""Every kind of subject data has a retention category (GDPR Art. 5(1)(e)), and the
categories carry the issue's defaults."""

from __future__ import annotations

from django.db import models
from django.test.utils import isolate_apps

from apps.privacy.registry import subject_bearing_models
from apps.retention.registry import (
    category_models,
    cover_models,
    retention_categories,
    uncovered_subject_models,
)


def test_every_subject_bearing_model_is_governed_by_a_retention_category():
    assert subject_bearing_models(), "the walk found no subject models at all"
    assert uncovered_subject_models() == [], (
        "give these models a retention category (register_retention_category) or add them "
        "to one (cover_models)")


@isolate_apps("apps.retention")
def test_a_new_subject_model_without_a_category_is_reported():
    class Forgotten(models.Model):
        subject_key = models.CharField(max_length=64)

        class Meta:
            app_label = "retention"

        def __str__(self) -> str:
            return "forgotten"

    assert "retention.Forgotten" in uncovered_subject_models(Forgotten._meta.apps)
    cover_models("inactive_subjects", "retention.Forgotten")
    try:
        assert "retention.Forgotten" not in uncovered_subject_models(Forgotten._meta.apps)
    finally:
        from apps.retention import registry

        registry._extra_models["inactive_subjects"].discard("retention.Forgotten")


def test_categories_carry_the_documented_defaults_in_enforcement_order():
    categories = {c.code: c for c in retention_categories()}
    assert categories["events"].default_days == 365
    assert categories["consent_ledger"].default_days == 5 * 365 + 1  # 5 years, leap day incl.
    assert categories["audit_entries"].default_days == 3 * 365 + 1
    assert categories["closed_privacy_requests"].default_days == 731  # >= 24 months
    assert categories["exports"].default_days == 7
    assert categories["model_artifacts"].time_based is False
    assert categories["inactive_subjects"].follows == "events"
    order = [c.code for c in retention_categories()]
    # Dry runs are exact only in this order (see apps/retention/categories.py).
    assert order.index("events") < order.index("inactive_subjects") < order.index(
        "consent_ledger") < order.index("audit_entries")
    assert order[-1] == "audit_entries"


def test_the_ledger_proof_is_not_erased_with_an_inactive_subject():
    assert "consent.ConsentRecord" not in category_models("inactive_subjects")


def test_the_migration_provisions_existing_tenants_with_the_registry_defaults():
    import importlib

    migration = importlib.import_module(
        "apps.retention.migrations.0002_provision_existing_tenants")
    expected = {c.code: c.default_days for c in retention_categories()}
    assert expected == migration.DEFAULTS
