"""The per-tenant search (validation split, budget, recorded choice) and the fair
champion/challenger (the active version re-scored on the challenger's hold-out)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from apps.events.models import Event
from apps.modeling.config import modeling_settings
from apps.modeling.models import ModelVersion
from apps.modeling.recommenders import recommenders
from apps.modeling.selectors import describe_decision
from apps.modeling.services import algorithms, train_model
from apps.modeling.services.dataset import snapshot_training_data
from apps.modeling.services.training import fit_pipeline
from tests.factories.modeling import add_events, configure, planted_dataset


@pytest.fixture
def planted(tenant):
    configure(tenant)
    return planted_dataset(tenant)


def _add_newer_purchases(planted, per_subject: int = 2) -> None:
    """Each subject buys ``per_subject`` more items of their group, after everything else:
    hold-out pairs no earlier model trained on."""
    for subject in planted.subjects:
        bought = set(Event.objects.for_tenant(planted.tenant)
                     .filter(subject_key=planted.keys[subject])
                     .values_list("item__external_id", flat=True))
        new = [i for i in planted.groups[planted.group_of[subject]] if i not in bought]
        add_events(planted.tenant, subject, new[:per_subject], start_minutes_ago=50,
                   subject_key=planted.keys[subject])


def test_the_validation_split_is_carved_from_training_and_never_touches_the_hold_out(planted):
    cfg = modeling_settings(planted.tenant)
    data = snapshot_training_data(tenant=planted.tenant, weighting=cfg.weighting)
    split = algorithms.split_data(data.matrix, data.last_seen, cfg.holdout_fraction)
    assert split.validation.nnz > 0
    assert split.test.nnz > 0
    assert split.validation.multiply(split.test).nnz == 0
    assert split.fit.multiply(split.test).nnz == 0
    assert (split.fit + split.validation != split.train).nnz == 0
    assert (split.train + split.test != data.matrix).nnz == 0
    # Per subject, every validation interaction is older than every held-out one.
    full = data.matrix.tocsr()
    for row in range(full.shape[0]):
        cells = dict(zip(full.indices[full.indptr[row]:full.indptr[row + 1]],
                         data.last_seen[full.indptr[row]:full.indptr[row + 1]], strict=True))
        valid = [cells[c] for c in split.validation[row].indices]
        held = [cells[c] for c in split.test[row].indices]
        if valid and held:
            assert max(valid) < min(held)
    assert len(split.fit_seen) == split.fit.nnz
    assert len(split.train_seen) == split.train.nnz


def test_each_algorithm_declares_its_search_space_starting_with_its_own_parameters(tenant):
    cfg = modeling_settings(tenant)
    for recommender in recommenders():
        space = recommender.search_space(cfg)
        assert space[0] == recommender.base_params(cfg)
    grid = algorithms.candidate_grid(cfg, frozenset(cfg.algorithms))
    names = [algorithm.name for algorithm, _, _ in grid]
    assert names[:3] == ["als", "bm25", "ease"]  # every algorithm's own parameters first
    assert len(set(map(str, grid))) == len(grid)
    recency = {(a.name, h) for a, _, h in grid if h}
    assert ("als", 90.0) in recency
    assert not any(name == "ease" for name, _ in recency)
    # Without a budget: each algorithm's own parameters only.
    assert len(algorithms.candidate_grid(cfg, frozenset(cfg.algorithms), search=False)) == 3


class StepClock:
    """A deterministic clock: each reading is ``step`` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.readings = itertools.count(0.0, step)

    def __call__(self) -> float:
        return next(self.readings)


def test_the_search_stops_at_its_budget_by_the_clock_it_is_given(planted):
    configure(planted.tenant, model_search_seconds=60)
    cfg = modeling_settings(planted.tenant)
    data = snapshot_training_data(tenant=planted.tenant, weighting=cfg.weighting)
    # Every reading 100 s later: after the first fit of each algorithm the budget is spent.
    slow = fit_pipeline(data, cfg, clock=StepClock(100.0))
    assert [(c.algorithm, c.params) for c in slow.candidates] == [
        (r.name, r.base_params(cfg)) for r in recommenders()]
    # A clock that never moves: the whole grid fits in the budget.
    fast = fit_pipeline(data, cfg, clock=StepClock(0.0))
    grid = algorithms.candidate_grid(cfg, frozenset(cfg.algorithms))
    assert len(fast.candidates) == len(grid)
    assert {c.recency for c in fast.candidates} == set(algorithms.RECENCY_HALF_LIVES)


def test_the_choice_is_made_on_validation_and_recorded_with_hold_out_figures(planted):
    configure(planted.tenant, model_search_seconds=3600)
    version = train_model(tenant=planted.tenant)
    fitted = [c for c in version.search if "skipped" not in c]
    assert len(fitted) > 3
    assert all(c["validation"]["users"] > 0 for c in fitted)
    best = max(fitted, key=lambda c: c["ndcg@10"])
    assert version.params["chosen"] == best["params"]
    assert version.algorithm == best["algorithm"]
    assert version.params["recency_half_life_days"] == best["recency_half_life_days"]
    assert version.metrics["validation"]["ndcg@10"] == best["ndcg@10"]
    assert version.params["searched"] is True
    # The hold-out figure is the chosen parameters refitted on the training part.
    assert version.metrics["model"]["users"] > 0
    assert version.metrics["model"]["ndcg@10"] != version.metrics["validation"]["ndcg@10"]


def test_search_off_with_one_algorithm_fits_once_on_training_and_folds_in(planted):
    configure(planted.tenant, model_algorithms=["als"])
    cfg = modeling_settings(planted.tenant)
    data = snapshot_training_data(tenant=planted.tenant, weighting=cfg.weighting)
    result = fit_pipeline(data, cfg)
    assert not result.searched
    assert result.split.validation is None  # no validation split is even built
    assert [c.algorithm for c in result.candidates] == ["als"]
    assert result.chosen.metrics == {}
    assert result.chosen.holdout["users"] > 0


def test_recency_weighting_decays_by_each_subjects_own_newest_interaction():
    import scipy.sparse as sp

    matrix = sp.csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 4.0, 4.0]], dtype=np.float32))
    day = 86400.0
    last_seen = np.array([100 * day, 70 * day, 0.0, 30 * day])
    weighted = algorithms.recency_weighted(matrix, last_seen, 30.0)
    np.testing.assert_allclose(weighted.data, [1.0, 1.0, 2.0, 4.0], rtol=1e-6)
    floored = algorithms.recency_weighted(matrix, last_seen, 3.0)  # 2**-10: the floor
    np.testing.assert_allclose(floored.data, [1.0, 0.02, 0.04, 4.0], rtol=1e-6)
    assert algorithms.recency_weighted(matrix, last_seen, None) is matrix


# --- Champion / challenger -------------------------------------------------------------------


def test_the_champion_is_re_scored_on_the_challengers_hold_out_not_its_stored_figure(planted):
    configure(planted.tenant, model_activation_tolerance=0.05)
    first = train_model(tenant=planted.tenant)
    ModelVersion.objects.for_tenant(planted.tenant).filter(pk=first.pk).update(
        metrics={**first.metrics, "model": {**first.metrics["model"], "ndcg@10": 0.999}})
    _add_newer_purchases(planted)
    second = train_model(tenant=planted.tenant)
    decision = second.activation_decision
    assert decision["champion"]["version"] == 1
    assert decision["champion"]["stored_ndcg@10"] == 0.999
    assert decision["champion"]["ndcg@10"] < 0.9  # re-scored, not read
    assert decision["holdout"]["users"] == len(planted.subjects)
    assert decision["holdout"]["interactions"] >= len(planted.subjects)
    assert decision["rule"] == "challenger_wins"
    assert second.status == ModelVersion.Status.ACTIVE
    line = describe_decision(decision)
    assert line.startswith(f"activated: challenger NDCG@10 {decision['challenger']['ndcg@10']:.4f}")
    assert f"v1 re-scored {decision['champion']['ndcg@10']:.4f}" in line
    assert f"hold-out {len(planted.subjects)} subjects" in line


def test_a_worse_challenger_is_not_activated_though_the_stored_figure_says_otherwise(planted):
    first = train_model(tenant=planted.tenant)
    ModelVersion.objects.for_tenant(planted.tenant).filter(pk=first.pk).update(
        metrics={**first.metrics, "model": {**first.metrics["model"], "ndcg@10": 0.0}})
    _add_newer_purchases(planted)
    # A challenger that cannot learn anything: ALS alone, crushed by regularization.
    configure(planted.tenant, model_algorithms=["als"], model_regularization=1e4,
              model_iterations=1, model_factors=2)
    second = train_model(tenant=planted.tenant)
    decision = second.activation_decision
    assert second.status == ModelVersion.Status.CANDIDATE
    assert decision["rule"] == "champion_kept"
    assert decision["champion"]["ndcg@10"] > decision["challenger"]["ndcg@10"] + 0.005
    assert "kept v1" in second.activation_note
    first.refresh_from_db()
    assert first.status == ModelVersion.Status.ACTIVE


def test_retraining_unchanged_data_has_nothing_to_compare_and_the_newer_model_serves(planted):
    first = train_model(tenant=planted.tenant)
    second = train_model(tenant=planted.tenant)
    assert first.activation_decision["rule"] == "first"
    assert second.activation_decision["rule"] == "not_comparable"
    assert second.activation_decision["holdout"]["users"] == 0
    assert second.status == ModelVersion.Status.ACTIVE
