"""Training: snapshot, search, registry, activation, runs, the command."""

from __future__ import annotations

import hashlib
from io import StringIO

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import AuditEvent
from apps.core.exceptions import ApplicationError
from apps.core.jobs import DurableJob
from apps.modeling.config import modeling_settings
from apps.modeling.models import ModelVersion, PrivacyBudgetEntry, ServingState, TrainingRun
from apps.modeling.recommenders.als import AlsRecommender
from apps.modeling.services import (
    algorithms,
    artifacts,
    execute_training_run,
    request_training,
    start_due_retrains,
    train_model,
)
from apps.modeling.services.dataset import snapshot_training_data
from apps.modeling.services.training import fit_pipeline
from tests.factories.events import withdraw_consent
from tests.factories.modeling import configure, planted_dataset


@pytest.fixture
def planted(tenant):
    configure(tenant)
    return planted_dataset(tenant)


def _artifact(version: ModelVersion) -> artifacts.Artifact:
    return artifacts.load(version.artifact_path, version.artifact_sha256)


def test_training_registers_an_active_version_with_everything_recorded(planted):
    version = train_model(tenant=planted.tenant)
    assert version.status == ModelVersion.Status.ACTIVE
    assert version.number == 1
    assert version.params["als"]["factors"] == 8
    assert version.params["als"]["random_state"] == 42
    assert version.data_stats["subjects_consented"] == len(planted.subjects)
    assert version.data_stats["items"] == 40
    assert set(version.metrics) == {"model", "popularity", "als", "validation"}
    assert {"precision@10", "recall@20", "ndcg@10", "map@10", "coverage@10"} <= set(
        version.metrics["model"])
    assert version.consent_snapshot_at is not None
    assert {"stream_s", "csr_build_s", "search_s"} <= set(version.timings)
    assert [c["algorithm"] for c in version.search] == ["als", "bm25", "ease"]
    state = ServingState.objects.for_tenant(planted.tenant).get()
    assert state.active_version_id == version.pk


def test_the_artifact_is_checksummed_numpy_under_the_tenant_prefix_without_raw_ids(planted):
    version = train_model(tenant=planted.tenant)
    assert version.artifact_path.startswith(f"modeling/tenant-{planted.tenant.pk}/")
    with default_storage.open(version.artifact_path, "rb") as handle:
        data = handle.read()
    assert hashlib.sha256(data).hexdigest() == version.artifact_sha256
    assert data[:2] == b"PK"  # an .npz (zip of .npy), loadable with allow_pickle=False
    for raw in planted.subjects:
        assert raw.encode() not in data
    artifact = _artifact(version)
    assert sorted(k.decode() for k in artifact.user_keys) == sorted(planted.keys.values())
    assert artifact.embedding.item_factors.shape == (40, 8)


def test_an_altered_artifact_is_refused(planted):
    version = train_model(tenant=planted.tenant)
    path = default_storage.path(version.artifact_path)
    with open(path, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ApplicationError) as exc:
        _artifact(version)
    assert exc.value.code == "artifact_corrupt"


def test_training_recovers_planted_structure_well_above_popularity(tenant):
    configure(tenant, model_iterations=20)
    planted = planted_dataset(tenant, groups=5, items_per_group=12, subjects_per_group=16,
                              per_subject=8, seed=3)
    version = train_model(tenant=tenant)
    model, popular = version.metrics["model"], version.metrics["popularity"]
    assert model["recall@10"] >= 0.6, version.metrics
    assert model["recall@10"] >= 2.5 * popular["recall@10"], version.metrics
    assert model["ndcg@10"] >= 2 * popular["ndcg@10"], version.metrics
    # And the served model agrees: a subject's unseen group items rank first.
    artifact = _artifact(version)
    subject = planted.subjects[0]
    row = artifact.user_row(planted.keys[subject])
    scores = artifact.embedding.item_factors @ artifact.embedding.user_factors[row]
    group_items = {planted.item_pk(i) for i in planted.groups[planted.group_of[subject]]}
    top = [int(artifact.item_ids[c]) for c in np.argsort(-scores)[:10]]
    assert len(group_items & set(top)) >= 8


def test_a_subject_who_withdrew_is_absent_from_the_next_snapshot(planted):
    first = train_model(tenant=planted.tenant)
    gone = planted.subjects[3]
    assert _artifact(first).user_row(planted.keys[gone]) is not None
    withdraw_consent(planted.tenant, gone)
    second = train_model(tenant=planted.tenant)
    assert _artifact(second).user_row(planted.keys[gone]) is None
    assert second.data_stats["subjects_consented"] == len(planted.subjects) - 1


def test_subjects_below_level_full_or_restricted_are_not_trained_on(tenant):
    from apps.consent.services import record_consents, set_restriction

    configure(tenant)
    planted = planted_dataset(tenant)
    session_only, restricted = planted.subjects[0], planted.subjects[1]
    record_consents(tenant=tenant, subject_key=planted.keys[session_only], decisions={},
                    level="session")
    set_restriction(tenant=tenant, subject_key=planted.keys[restricted], restricted=True)
    artifact = _artifact(train_model(tenant=tenant))
    assert artifact.user_row(planted.keys[session_only]) is None
    assert artifact.user_row(planted.keys[restricted]) is None
    assert artifact.user_row(planted.keys[planted.subjects[2]]) is not None


def test_a_training_run_records_progress_per_iteration_and_is_idempotent(
        planted, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = request_training(tenant=planted.tenant, reason=TrainingRun.Reason.MANUAL)
    assert request_training(tenant=planted.tenant).pk == run.pk  # requests coalesce
    version = execute_training_run(tenant_id=planted.tenant.pk, run_id=run.pk)
    run.refresh_from_db()
    assert run.status == DurableJob.Status.SUCCEEDED
    assert run.model_version_id == version.pk
    assert run.progress["iterations"] == 12
    assert run.progress["iteration"] == 12
    assert "chosen:" in run.log
    # A duplicate delivery does nothing.
    assert execute_training_run(tenant_id=planted.tenant.pk, run_id=run.pk) is None
    assert ModelVersion.objects.for_tenant(planted.tenant).count() == 1


def test_train_model_for_a_run_that_already_registered_returns_its_version(planted):
    run = TrainingRun.objects.create(tenant=planted.tenant)
    version = train_model(tenant=planted.tenant, run=run)
    run.refresh_from_db()
    assert train_model(tenant=planted.tenant, run=run).pk == version.pk
    assert ModelVersion.objects.for_tenant(planted.tenant).count() == 1


def test_a_run_without_consented_data_fails_visibly(tenant):
    configure(tenant)
    planted_dataset(tenant, consent=False)
    run = TrainingRun.objects.create(tenant=tenant)
    assert execute_training_run(tenant_id=tenant.pk, run_id=run.pk) is None
    run.refresh_from_db()
    assert run.status == DurableJob.Status.FAILED
    assert run.last_error.startswith("not_enough_data")
    assert not ModelVersion.objects.for_tenant(tenant).exists()


def test_the_enqueued_run_trains_after_commit(planted, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = request_training(tenant=planted.tenant)
    run.refresh_from_db()
    assert run.status == DurableJob.Status.SUCCEEDED


def test_a_withdrawal_schedules_a_debounced_retrain(planted, django_capture_on_commit_callbacks):
    train_model(tenant=planted.tenant)
    configure(planted.tenant, model_retrain_debounce_seconds=3600)
    with django_capture_on_commit_callbacks(execute=True):
        withdraw_consent(planted.tenant, planted.subjects[0])
    state = ServingState.objects.for_tenant(planted.tenant).get()
    assert state.retrain_requested_at is not None
    assert state.retrain_reason == "withdrawal"
    assert start_due_retrains() == 0  # still within the debounce delay
    configure(planted.tenant, model_retrain_debounce_seconds=0)
    with django_capture_on_commit_callbacks(execute=True):
        assert start_due_retrains() == 1
    run = TrainingRun.objects.for_tenant(planted.tenant).get(reason="withdrawal")
    assert run.status == DurableJob.Status.SUCCEEDED
    state.refresh_from_db()
    assert state.retrain_requested_at is None


def test_each_training_makes_one_dp_release_in_the_ledger(planted):
    version = train_model(tenant=planted.tenant)
    entry = PrivacyBudgetEntry.objects.for_tenant(planted.tenant).get()
    assert entry.model_version_id == version.pk
    assert entry.epsilon == pytest.approx(1.0)
    assert AuditEvent.objects.for_tenant(planted.tenant).filter(
        action="modeling.dp_release").exists()


def test_old_artifacts_are_pruned_but_versions_kept(planted, django_capture_on_commit_callbacks):
    configure(planted.tenant, model_keep_artifacts=1, model_activation_tolerance=1.0)
    with django_capture_on_commit_callbacks(execute=True):
        versions = [train_model(tenant=planted.tenant) for _ in range(3)]
    paths = [v.artifact_path for v in versions]
    for v in versions:
        v.refresh_from_db()
    assert [v.has_artifact for v in versions] == [False, False, True]
    assert not default_storage.exists(paths[0])
    assert ModelVersion.objects.for_tenant(planted.tenant).count() == 3


def test_other_tenants_events_never_reach_the_matrix(planted, other_tenant):
    configure(other_tenant)
    planted_dataset(other_tenant, prefix="other-", seed=9)
    version = train_model(tenant=planted.tenant)
    assert version.data_stats["subjects_consented"] == len(planted.subjects)
    assert version.data_stats["items"] == 40


def test_the_command_trains_in_the_foreground_and_prints_metrics(planted):
    out = StringIO()
    call_command("train_models", "--tenant", planted.tenant.slug, stdout=out)
    text = out.getvalue()
    assert "iteration 12/12" in text
    assert "ndcg@10" in text
    assert "v1 (" in text
    assert "champion/challenger: activated (first): first model of the tenant" in text
    run = TrainingRun.objects.for_tenant(planted.tenant).get()
    assert run.reason == TrainingRun.Reason.COMMAND
    assert run.status == DurableJob.Status.SUCCEEDED


def test_the_command_exits_non_zero_when_training_fails(tenant):
    configure(tenant)
    planted_dataset(tenant, consent=False)
    with pytest.raises(CommandError, match="not_enough_data"):
        call_command("train_models", "--tenant", tenant.slug, stdout=StringIO())


def test_the_command_refuses_an_unknown_tenant(db):
    with pytest.raises(CommandError):
        call_command("train_models", "--tenant", "nope", stdout=StringIO())


def test_the_demo_seeder_asks_for_a_first_model_once(planted, django_capture_on_commit_callbacks):
    from apps.modeling.demo import seed_demo_model

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        seed_demo_model(planted.tenant, out)
    assert ModelVersion.objects.for_tenant(planted.tenant).get().status == "active"
    seed_demo_model(planted.tenant, out)
    assert TrainingRun.objects.for_tenant(planted.tenant).count() == 1


def test_the_hold_out_scores_the_training_fit_never_the_served_fold_in(planted):
    """The chosen parameters are scored on the hold-out as fitted on the training part (the
    validation fit warm-started there); the evaluation runs beside the served fit on all
    data, which has seen the held-out interactions, and must never see its factors."""
    cfg = modeling_settings(planted.tenant)
    data = snapshot_training_data(tenant=planted.tenant, weighting=cfg.weighting)
    result = fit_pipeline(data, cfg)
    assert result.searched  # three algorithms: chosen on validation

    split = algorithms.split_data(data.matrix, data.last_seen, cfg.holdout_fraction)
    users = algorithms.eval_users(split.test, cfg.eval_max_users)
    holdout_fit = AlsRecommender(result.embedding.params)
    holdout_fit.fit(split.fit)
    holdout_fit.fit_full(split.train)
    assert result.embedding.holdout == algorithms.evaluate_model(
        holdout_fit, split.train, split.test, users)
    assert not np.array_equal(result.artifact.embedding.user_factors, holdout_fit.user_factors)


def test_a_frozen_model_keeps_its_factors_while_the_original_is_refitted(planted):
    cfg = modeling_settings(planted.tenant)
    data = snapshot_training_data(tenant=planted.tenant, weighting=cfg.weighting)
    model = AlsRecommender(AlsRecommender.base_params(cfg))
    model.fit(data.matrix)
    before = model.user_factors.copy(), model.item_factors.copy()

    frozen = model.frozen()
    model.fit_full(data.matrix, iterations=2)

    assert np.array_equal(frozen.user_factors, before[0])
    assert np.array_equal(frozen.item_factors, before[1])
    assert not np.array_equal(model.user_factors, before[0])
