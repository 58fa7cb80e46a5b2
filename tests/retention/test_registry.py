"""Every kind of subject data has a retention category (GDPR Art. 5(1)(e)), derived from the
subject-data declarations, and the categories carry the issue's defaults."""

from __future__ import annotations

from django.db import models
from django.test.utils import isolate_apps

from apps.core.subject_data import (
    RetentionRule,
    stores_governed_by,
    subject_bearing_models,
    subject_data_stores,
    undeclared_subject_models,
)
from apps.core.subject_data import not_applicable as na
from apps.retention.categories import retention_categories, undefined_retention_categories
from tests.subject_data import declared, throwaway_store


def test_every_subject_bearing_model_is_governed_by_a_retention_category():
    assert subject_bearing_models(), "the walk found no subject models at all"
    assert undeclared_subject_models() == [], "declare these models in a subject_data module"
    assert undefined_retention_categories() == [], (
        "give these stores an Expiry of their own or the category of a retention rule")
    governed = {s.retention.category for s in subject_data_stores()}
    assert governed <= {c.code for c in retention_categories()}


@isolate_apps("apps.retention")
def test_a_new_subject_model_without_a_category_is_reported():
    class Forgotten(models.Model):
        subject_key = models.CharField(max_length=64)

        class Meta:
            app_label = "retention"

        def __str__(self) -> str:
            return "forgotten"

    assert "retention.Forgotten" in undeclared_subject_models(Forgotten._meta.apps)
    store = throwaway_store("retention.forgotten", models=("retention.Forgotten",))
    with declared(store):
        assert "retention.Forgotten" not in undeclared_subject_models(Forgotten._meta.apps)
        assert store in stores_governed_by("inactive_subjects")
    nowhere = throwaway_store("retention.nowhere", retention=RetentionRule(
        category="nowhere", text=lambda tenant, period: "?", expiry=na("test"), dated=False))
    with declared(nowhere):
        assert undefined_retention_categories() == ["retention.nowhere: no category 'nowhere'"]


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
    governed = {label for s in stores_governed_by("inactive_subjects") for label in s.models}
    assert "consent.SubjectState" in governed
    assert "consent.ConsentRecord" not in governed


def test_the_migrations_provision_existing_tenants_with_the_registry_defaults():
    """The first provisioning migration and one per category added later, together."""
    import importlib

    provisioned: dict[str, int | None] = {}
    for name in ("0002_provision_existing_tenants", "0005_provision_webhook_deliveries"):
        provisioned |= importlib.import_module(f"apps.retention.migrations.{name}").DEFAULTS
    expected = {c.code: c.default_days for c in retention_categories()}
    assert expected == provisioned
