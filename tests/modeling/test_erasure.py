"""The erasure hook, lineage export, the verifier and the unlearning oracle."""

from __future__ import annotations

import numpy as np

from apps.audit.models import AuditEvent
from apps.core.subject_data import get_subject_data_store, subject_data_stores
from apps.modeling.config import modeling_settings
from apps.modeling.models import ModelVersion, ServingState
from apps.modeling.recommenders.als import make_als
from apps.modeling.services import (
    artifacts,
    artifacts_holding_subject,
    export_subject,
    start_due_retrains,
    train_model,
)
from apps.modeling.services.algorithms import holdout_split
from apps.modeling.services.dataset import snapshot_training_data
from apps.privacy.services.erasure_check import erasure_verifiers
from tests.factories.modeling import configure


def _load(version: ModelVersion) -> artifacts.Artifact:
    version.refresh_from_db()
    return artifacts.load(version.artifact_path, version.artifact_sha256)


def _erase_everywhere(tenant, subject_key: str) -> None:
    """What the privacy app's erasure does: every declared store, in order."""
    for handler in subject_data_stores():
        handler.erase(tenant, subject_key)


def test_the_store_and_its_verifier_are_declared():
    assert "modeling.artifacts" in {h.name for h in subject_data_stores()}
    assert "modeling.artifacts" in erasure_verifiers()


def test_erasure_removes_the_subject_from_every_artifact_and_recomputes_touched_items(
        heavy, django_capture_on_commit_callbacks):
    tenant, key = heavy.tenant, heavy.keys["heavy"]
    configure(tenant, model_retrain_debounce_seconds=3600)
    old = train_model(tenant=tenant)
    newer = train_model(tenant=tenant)  # old is retired but its artifact is kept
    old.refresh_from_db()
    assert old.has_artifact
    assert len(artifacts_holding_subject(tenant, key)) == 2
    before = _load(newer)
    row = before.user_row(key)
    touched = before.user_items[row].indices

    with django_capture_on_commit_callbacks(execute=True):
        _erase_everywhere(tenant, key)

    assert artifacts_holding_subject(tenant, key) == []
    after = _load(newer)
    assert after.user_row(key) is None
    assert newer.erased_subjects == 1
    old.refresh_from_db()
    assert not old.has_artifact
    assert not artifacts.contains_subject(newer.artifact_path, key)
    # Touched items moved toward the model trained without the subject, compared through
    # the others' predicted preferences. ALS has many optima, and subject keys (so row
    # order, so the random start) differ per run: the model trained without the subject is
    # fitted from the same start as the served one (its factors, the subject's row
    # dropped), so both are in one basin and the comparison is not at the mercy of a seed.
    keep = np.array([k.decode() != key for k in before.user_keys])
    item_ids = after.item_ids
    remaining = after.user_items
    before, after = before.embedding, after.embedding
    oracle = make_als({**before.params, "num_threads": 1})
    oracle.user_factors = np.array(before.user_factors[keep], copy=True)
    oracle.item_factors = np.array(before.item_factors, copy=True)
    oracle.fit(remaining, show_progress=False)
    target = oracle.user_factors @ oracle.item_factors[touched].T
    was = before.user_factors[keep] @ before.item_factors[touched].T
    now = after.user_factors @ after.item_factors[touched].T
    assert np.linalg.norm(now - target) < np.linalg.norm(was - target)
    untouched = np.setdiff1d(np.arange(len(item_ids)), touched)
    np.testing.assert_array_equal(after.item_factors[untouched], before.item_factors[untouched])
    # Lineage in the audit trail, without the key itself.
    entry = AuditEvent.objects.for_tenant(tenant).get(action="modeling.subject_erased")
    assert entry.details["versions"] == [old.number, newer.number]
    assert key not in str(entry.details)
    # A retrain is pending; the second erasure call finds nothing.
    assert ServingState.objects.for_tenant(tenant).get().retrain_requested_at is not None
    assert subject_data_stores()[0].erase(tenant, key) == 0


def test_unlearning_oracle_the_retrain_equals_training_from_scratch_without_them(
        heavy, django_capture_on_commit_callbacks):
    """Fixed seed, one thread: implicit's ALS is bit-reproducible, so the retrain an
    erasure triggers must give exactly the item factors of a fresh fit on the data without
    the subject (here rebuilt with bare implicit calls)."""
    tenant, key = heavy.tenant, heavy.keys["heavy"]
    first = train_model(tenant=tenant)
    cfg = modeling_settings(tenant)
    data = snapshot_training_data(tenant=tenant, exclude_subjects=frozenset({key}))
    train, _ = holdout_split(data.matrix, data.last_seen, cfg.holdout_fraction)
    bare = make_als(first.params["als"])
    bare.fit(train, show_progress=False)
    bare.iterations = 1  # the platform's warm-started pass on the full data
    bare.fit(data.matrix, show_progress=False)

    with django_capture_on_commit_callbacks(execute=True):
        _erase_everywhere(tenant, key)
    with django_capture_on_commit_callbacks(execute=True):
        assert start_due_retrains() == 1  # debounce 0 in the test settings

    retrained = ModelVersion.objects.for_tenant(tenant).get(status=ModelVersion.Status.ACTIVE)
    assert retrained.number == 2
    assert "erased" in retrained.activation_note
    new = _load(retrained)
    np.testing.assert_array_equal(new.item_ids, data.item_ids)
    assert np.array_equal(new.embedding.item_factors, bare.item_factors)  # bit for bit
    # The patched artifact of v1 is destroyed once v2 serves.
    first.refresh_from_db()
    assert not first.has_artifact
    assert artifacts_holding_subject(tenant, key) == []


def test_export_returns_lineage_with_inferred_categories(heavy):
    train_model(tenant=heavy.tenant)
    subject = heavy.subjects[0]
    exported = export_subject(heavy.tenant, heavy.keys[subject])
    (entry,) = exported["model_versions"]
    assert entry["model_version"] == 1
    assert entry["interactions_used"] >= 7
    assert f"group-{heavy.group_of[subject]}" in entry["inferred_top_categories"][:2]
    assert export_subject(heavy.tenant, "0" * 64) == {"model_versions": []}


def test_unregistered_artifacts_are_reported_by_the_verifier(heavy):
    version = train_model(tenant=heavy.tenant)
    stray = artifacts.save(heavy.tenant.pk, _load(version), label="stray")[0]
    places = artifacts_holding_subject(heavy.tenant, heavy.keys["heavy"])
    assert any(stray in p and "unregistered" in p for p in places)


def test_serving_forgets_the_subject_at_once(heavy, api, django_capture_on_commit_callbacks):
    train_model(tenant=heavy.tenant)
    assert api.get("/api/v1/recommendations", {"subject": "heavy"}).json()["personalized"]
    with django_capture_on_commit_callbacks(execute=True):
        subject_data_stores()[0].erase(heavy.tenant, heavy.keys["heavy"])  # model only
    body = api.get("/api/v1/recommendations", {"subject": "heavy"}).json()
    assert body["personalized"] is False
    assert body["reason"] == "unknown_subject"


def test_the_erasure_describer_names_the_versions_for_the_receipt(heavy):
    train_model(tenant=heavy.tenant)
    describe = get_subject_data_store("modeling.artifacts").describe_erasure
    assert describe(heavy.tenant, heavy.keys["heavy"]) == {"model_versions": ["v1"]}
    assert describe(heavy.tenant, "0" * 64) == {"model_versions": []}
