"""The consent stores are declared once: export, erase and rectify per subject."""

from __future__ import annotations

from apps.consent.models import ConsentRecord, ConsentState, SubjectState
from apps.consent.selectors import can_use
from apps.consent.services import set_restriction
from apps.core.subject_data import Correction, subject_data_stores, undeclared_subject_models
from tests.factories.consent import record_for, subject_key

SK = subject_key("erase-me")
OTHER = subject_key("keep-me")


def _handlers():
    return {s.name: s for s in subject_data_stores() if s.name.startswith("consent.")}


def test_every_consent_model_is_covered_and_the_ledger_is_erased_last():
    assert not [m for m in undeclared_subject_models() if m.startswith("consent.")]
    handlers = _handlers()
    assert set(handlers) == {"consent.subject_state", "consent.state", "consent.ledger"}
    assert handlers["consent.ledger"].order > handlers["consent.state"].order


def test_export_shows_current_choices_flags_and_history(tenant):
    record_for(tenant, SK, level="full", personalization=True)
    set_restriction(tenant=tenant, subject_key=SK, restricted=True)
    handlers = _handlers()
    (state,) = handlers["consent.state"].export(tenant, SK)
    assert (state["purpose__key"], state["granted"], state["notice__version"]) == (
        "personalization", True, "v1")
    assert handlers["consent.subject_state"].export(tenant, SK)[0]["restricted"] is True
    history = handlers["consent.ledger"].export(tenant, SK)
    assert [h["kind"] for h in history] == ["purpose", "level", "restriction"]


def test_erase_removes_only_this_subjects_rows_in_this_tenant(tenant, other_tenant):
    for t in (tenant, other_tenant):
        record_for(t, SK, personalization=True)
    record_for(tenant, OTHER, personalization=True)
    for handler in sorted(_handlers().values(), key=lambda h: h.order):
        assert handler.erase(tenant, SK) >= 1
    for model in (ConsentRecord, ConsentState, SubjectState):
        assert not model.objects.for_tenant(tenant).filter(subject_key=SK).exists()
        assert model.objects.for_tenant(tenant).filter(subject_key=OTHER).exists()
        assert model.objects.for_tenant(other_tenant).filter(subject_key=SK).exists()
    assert not can_use(tenant=tenant, subject_key=SK, purpose="personalization")


def test_a_correction_is_a_new_decision_and_the_ledger_keeps_the_old_one(tenant):
    record_for(tenant, SK, level="full", personalization=True)
    handlers = _handlers()
    before = ConsentRecord.objects.for_tenant(tenant).filter(subject_key=SK).count()
    outcome = handlers["consent.state"].rectify(
        tenant, SK, Correction({"consents": {"personalization": False}}, "portal"))
    assert outcome == {"consents_changed": ["personalization"]}
    assert not can_use(tenant=tenant, subject_key=SK, purpose="personalization")
    assert ConsentRecord.objects.for_tenant(tenant).filter(subject_key=SK).count() > before
    assert handlers["consent.state"].rectify(tenant, SK, Correction({}, "portal")) == {}
