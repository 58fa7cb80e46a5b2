"""EASE: the closed form, the catalog guard and exact unlearning. (Training, serving, the
bundle and erasure of every registered algorithm, EASE included, are in
test_recommenders.py.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from apps.core.subject_data import subject_data_stores
from apps.modeling.config import modeling_settings
from apps.modeling.models import ModelVersion
from apps.modeling.recommenders import get_recommender
from apps.modeling.recommenders.ease import EaseRecommender, fit_weights
from apps.modeling.services import artifacts, start_due_retrains, train_model
from apps.modeling.services.dataset import snapshot_training_data
from tests.factories.modeling import configure, planted_dataset


def _load(version: ModelVersion) -> artifacts.Artifact:
    version.refresh_from_db()
    return artifacts.load(version.artifact_path, version.artifact_sha256)


def _interactions(seed: int = 0, users: int = 30, items: int = 12) -> Any:
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    dense = rng.random((users, items)) < 0.3
    weights = rng.integers(1, 6, size=(users, items)) * dense  # repeat purchases
    return sp.csr_matrix(weights.astype(np.float32))


def _reference(matrix: Any, lam: float) -> np.ndarray:
    """Steck's closed form, written out densely in float64."""
    x = (matrix.toarray() > 0).astype(np.float64)
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def test_the_closed_form_matches_a_dense_reference():
    matrix = _interactions()
    for lam in (0.5, 10.0, 300.0):
        weights = fit_weights(matrix, lam)
        assert weights.dtype == np.float32
        assert not np.diag(weights).any()
        reference = _reference(matrix, lam)
        np.testing.assert_allclose(weights, reference, rtol=1e-4,
                                   atol=1e-5 * np.abs(reference).max())
    # Only who touched what counts: repeat counts give the same weights as presence.
    assert np.array_equal(fit_weights(matrix, 10.0), fit_weights((matrix > 0).astype(
        np.float32), 10.0))


def test_scores_explanations_and_the_evaluation_use_the_weights():
    matrix = _interactions(seed=1)
    model = EaseRecommender({"lambda": 5.0, "max_items": 100})
    model.fit(matrix)
    b = model.weights.astype(np.float64)
    x = (matrix.toarray() > 0).astype(np.float64)
    np.testing.assert_allclose(model.score_subject(3, matrix), x[3] @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score_session(matrix[3]), x[3] @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.similar(4), model.weights[4])
    top = model.top_items(np.arange(matrix.shape[0]), matrix, 3)
    for row in range(matrix.shape[0]):
        scores = x[row] @ b
        scores[x[row] > 0] = -np.inf
        assert not set(top[row]) & set(np.flatnonzero(x[row]))  # seen items excluded
        np.testing.assert_allclose(scores[top[row]], np.sort(scores)[::-1][:3], rtol=1e-5)
    columns = top[0]
    for column, because in zip(columns, model.explain(0, matrix, columns, 2), strict=True):
        own = np.flatnonzero(x[0])
        expected = sorted(((b[j, column], j) for j in own if b[j, column] > 0),
                          reverse=True)[:2]
        assert [j for j, _ in because] == [j for _, j in expected]
    loaded = EaseRecommender.from_arrays(model.params, model.to_arrays(), matrix.shape[1])
    assert np.array_equal(loaded.weights, model.weights)


def test_a_catalog_above_the_guard_is_not_fitted():
    matrix = _interactions(items=12)
    assert EaseRecommender.skip_reason({"lambda": 1.0, "max_items": 12}, matrix) is None
    reason = EaseRecommender.skip_reason({"lambda": 1.0, "max_items": 11}, matrix)
    assert reason is not None
    assert "12 items exceed model_ease_max_items=11" in reason
    with pytest.raises(ValueError, match="exceed"):
        EaseRecommender({"lambda": 1.0, "max_items": 11}).fit(matrix)


def test_training_skips_ease_above_the_guard_and_records_why(tenant):
    configure(tenant, model_ease_max_items=30)  # the planted catalog has 40 items
    planted_dataset(tenant)
    assert modeling_settings(tenant).algorithm["model_ease_max_items"] == 30
    version = train_model(tenant=tenant)
    (ease,) = [c for c in version.search if c["algorithm"] == "ease"]
    assert "40 items exceed model_ease_max_items=30" in ease["skipped"]
    assert version.algorithm != "ease"
    # Allowed alone, EASE is still skipped: the best fitted candidate serves instead.
    configure(tenant, model_algorithms=["ease"], model_activation_tolerance=1.0)
    fallback = train_model(tenant=tenant)
    assert fallback.algorithm == "als"
    assert [c.get("skipped", "") != "" for c in fallback.search] == [False, True]
    configure(tenant, model_ease_max_items=40)
    assert train_model(tenant=tenant).algorithm == "ease"


@pytest.fixture
def heavy(heavy):
    """The planted tenant with its heavy subject (tests/modeling/conftest.py), serving
    EASE."""
    configure(heavy.tenant, model_algorithms=["ease"], model_ease_lambda=2.0)
    return heavy


def test_unlearning_the_erasure_patch_equals_training_without_them_bit_for_bit(
        heavy, django_capture_on_commit_callbacks):
    """EASE depends on the data only through ``XᵀX``: the patched model, the retrain the
    erasure triggers and a bare fit on the data without the subject are the same bits."""
    tenant, key = heavy.tenant, heavy.keys["heavy"]
    first = train_model(tenant=tenant)
    assert first.algorithm == "ease"
    before = _load(first).recommender.weights
    data = snapshot_training_data(tenant=tenant, exclude_subjects=frozenset({key}))
    bare = get_recommender("ease")(first.params["chosen"])
    bare.fit(data.matrix)

    with django_capture_on_commit_callbacks(execute=True):
        for store in subject_data_stores():
            store.erase(tenant, key)
    patched = _load(first)
    assert patched.user_row(key) is None
    np.testing.assert_array_equal(patched.item_ids, data.item_ids)
    assert not np.array_equal(patched.recommender.weights, before)  # they had influence
    assert np.array_equal(patched.recommender.weights, bare.weights)  # bit for bit

    with django_capture_on_commit_callbacks(execute=True):
        assert start_due_retrains() == 1
    retrained = ModelVersion.objects.for_tenant(tenant).get(status=ModelVersion.Status.ACTIVE)
    assert retrained.number == 2
    assert retrained.algorithm == "ease"
    assert np.array_equal(_load(retrained).recommender.weights, bare.weights)
