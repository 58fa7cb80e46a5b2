"""ALS's BM25/TF-IDF input weighting (issue 15 item 2): one declaration
(``InputWeighting``) used by the fits, serving (session fold-in, champion re-scoring,
explanations), the device bundle and the erasure patch; its IDF after an erasure is the one
computed without the subject."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from apps.modeling.config import modeling_settings
from apps.modeling.models import ModelVersion
from apps.modeling.recommenders.als import AlsRecommender, InputWeighting, make_als
from apps.modeling.services import artifacts, current_model, start_due_retrains, train_model
from apps.modeling.services.algorithms import candidate_grid, holdout_split
from apps.modeling.services.dataset import snapshot_training_data
from tests.factories.modeling import configure
from tests.modeling.test_erasure import _erase_everywhere, _load

SCHEMES = ("tfidf", "bm25")


def _sp() -> Any:
    import scipy.sparse

    return scipy.sparse


def _expected(matrix: Any, scheme: str, k1: float = 100.0, b: float = 0.8) -> np.ndarray:
    """The weighting written out densely from its definition (docs/modeling.md)."""
    dense = matrix.toarray().astype(np.float64)
    stored = dense != 0
    lengths = stored.sum(1)
    n = int((lengths > 0).sum())
    idf = np.log(1.0 + n / np.maximum(stored.sum(0), 1))
    if scheme == "tfidf":
        weighted = np.sqrt(dense) * idf
    else:
        norm = (1.0 - b) + b * lengths / lengths[lengths > 0].mean()
        weighted = dense * (k1 + 1.0) / (k1 * norm[:, None] + dense) * idf
    return np.where(stored, weighted, 0.0)


def _matrix(seed: int = 3) -> Any:
    rng = np.random.default_rng(seed)
    dense = rng.integers(1, 9, size=(30, 12)) * (rng.random((30, 12)) < 0.3)
    dense[5] = 0  # a subject with nothing in this part (same shape as the full matrix)
    dense[:, 0] = rng.integers(1, 3, size=30)  # an item every subject has: IDF still > 0
    dense[5, 0] = 0
    return _sp().csr_matrix(dense.astype(np.float32))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_weighting_is_its_definition_and_depends_only_on_which_cells_are_stored(scheme):
    matrix = _matrix()
    weighting = InputWeighting.of({"weighting": scheme}, matrix)
    got = weighting.apply(matrix)
    np.testing.assert_allclose(got.toarray(), _expected(matrix, scheme), rtol=1e-6)
    assert (got.data > 0).all()  # ALS reads a non-positive weight as a dislike
    scaled = matrix.copy()
    scaled.data = scaled.data * 7.5 + 1.0
    again = InputWeighting.of({"weighting": scheme}, scaled)
    np.testing.assert_array_equal(again.idf, weighting.idf)
    assert again.average_length == weighting.average_length
    # A history scored on its own (a session) is weighted with the model's statistics.
    one = weighting.apply(matrix[7])
    np.testing.assert_allclose(one.toarray()[0], _expected(matrix, scheme)[7], rtol=1e-6)
    assert InputWeighting.of({"weighting": "none"}, matrix).apply(matrix) is not None
    np.testing.assert_array_equal(
        InputWeighting.of({}, matrix).apply(matrix).toarray(), matrix.toarray())


def test_the_search_tries_bm25_and_tfidf_input_for_als(tenant):
    configure(tenant, model_algorithms=["als"], model_search_seconds=60)
    grid = candidate_grid(modeling_settings(tenant), frozenset({"als"}))
    weightings = [params.get("weighting") for algorithm, params, _ in grid
                  if algorithm.name == "als"]
    assert weightings[0] == "none"  # the tenant's own parameters first
    assert {"bm25", "tfidf"} <= set(weightings[:8])  # early, among the recency variants


@pytest.fixture
def weighted_als(monkeypatch):
    """ALS's own parameters with an input weighting (tenants get one through the search;
    here it is the only candidate, so training serves it)."""
    def use(scheme: str) -> None:
        base_params = AlsRecommender.base_params.__func__

        def weighted(cls: Any, cfg: Any) -> dict[str, Any]:
            return {**base_params(cls, cfg), "weighting": scheme}

        monkeypatch.setattr(AlsRecommender, "base_params", classmethod(weighted))
    return use


@pytest.mark.parametrize("scheme", SCHEMES)
def test_serving_explanations_and_the_bundle_weight_a_history_as_training_did(
        heavy, api, weighted_als, scheme):
    weighted_als(scheme)
    version = train_model(tenant=heavy.tenant)
    assert version.params["chosen"]["weighting"] == scheme  # recorded on the version
    assert version.params["als"]["weighting"] == scheme
    model = current_model(heavy.tenant)
    als = model.artifact.embedding
    assert als.weighting.scheme == scheme
    np.testing.assert_array_equal(  # the served statistics are the full matrix's
        als.weighting.idf, InputWeighting.of(version.params["als"],
                                             model.artifact.user_items).idf)
    subject = heavy.subjects[0]
    row = model.artifact.user_row(heavy.keys[subject])
    own = model.artifact.user_items[row]

    # Explanations and session scoring fold in the same weighted history: implicit's
    # explain sums to the score of that history's solved vector.
    scores = als.score_session(own)
    columns = np.argsort(-scores)[:3]
    explained = als.explain(row, model.artifact.user_items, columns, n=1000)
    for column, because in zip(columns.tolist(), explained, strict=True):
        assert sum(w for _, w in because) == pytest.approx(float(scores[column]), rel=1e-3)
    np.testing.assert_allclose(als.score_rows(_sp().vstack([own, own]))[1], scores, rtol=1e-4,
                               atol=1e-5)
    body = api.get("/api/v1/recommendations", {"subject": subject, "explain": "true"}).json()
    assert body["personalized"]
    assert all(i["because"] for i in body["items"])

    # On device: the bundle's formula (docs/modeling.md) gives the server's session scores.
    bundle = api.get("/api/v1/model-bundle").json()
    weighting = bundle["weighting"]
    assert weighting["scheme"] == scheme
    y, alpha = np.array(bundle["item_factors"]), bundle["alpha"]
    idf = np.array(weighting["idf"])
    mine = {bundle["items"].index(i): 1.0 for i in heavy.groups[2][:4]}  # as the route counts
    length = len(mine)
    a, b = np.array(bundle["gram"]), np.zeros(bundle["factors"])
    for j, w in mine.items():
        if scheme == "tfidf":
            w = np.sqrt(w) * idf[j]
        else:
            norm = 1 - weighting["b"] + weighting["b"] * length / weighting["average_length"]
            w = w * (weighting["k1"] + 1) / (weighting["k1"] * norm + w) * idf[j]
        c = alpha * w
        a += (c - 1.0) * np.outer(y[j], y[j])
        b += c * y[j]
    on_device = y @ np.linalg.solve(a, b)
    session = api.post("/api/v1/recommendations/session",
                       {"recent_items": heavy.groups[2][:4], "n": 5}, format="json").json()
    cols = [model.catalog.column_of[bundle["items"][j]] for j in mine]
    history = _sp().csr_matrix((np.full(len(cols), 1.0, np.float32), (np.zeros(len(cols)), cols)),
                            shape=(1, len(model.catalog.active)))
    server = als.score_session(history)
    order = [model.catalog.column_of[i] for i in bundle["items"]]
    np.testing.assert_allclose(on_device, server[order], rtol=1e-3, atol=1e-4)
    # The session route answers with those scores (near-ties may order differently).
    assert session["items"]
    for item in session["items"]:
        assert item["score"] == pytest.approx(on_device[bundle["items"].index(item["item"])],
                                              rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_after_an_erasure_the_served_idf_is_the_one_computed_without_the_subject(
        heavy, weighted_als, scheme, django_capture_on_commit_callbacks):
    weighted_als(scheme)
    tenant, key = heavy.tenant, heavy.keys["heavy"]
    first = train_model(tenant=tenant)
    before = _load(first)
    params = first.params["als"]
    without = snapshot_training_data(tenant=tenant, exclude_subjects=frozenset({key}))
    expected = InputWeighting.of(params, without.matrix)
    assert not np.array_equal(before.embedding.weighting.idf, expected.idf)

    with django_capture_on_commit_callbacks(execute=True):
        _erase_everywhere(tenant, key)
    patched = _load(first)
    assert patched.user_row(key) is None
    np.testing.assert_array_equal(patched.user_items.toarray(), without.matrix.toarray())
    served = current_model(tenant).artifact.embedding
    for model in (patched.embedding, served):
        np.testing.assert_array_equal(model.weighting.idf, expected.idf)  # bit for bit
        assert model.weighting.average_length == expected.average_length
    # Every item's weights changed with N: every item is recomputed, and the items the
    # subject touched moved toward the model trained without them (same start: see
    # test_erasure).
    assert not np.isclose(patched.embedding.item_factors, before.embedding.item_factors,
                          rtol=0, atol=1e-7).all(axis=1).any()
    keep = np.array([k.decode() != key for k in before.user_keys])
    touched = before.user_items[before.user_row(key)].indices
    oracle = make_als({**params, "num_threads": 1})
    oracle.user_factors = np.array(before.embedding.user_factors[keep], copy=True)
    oracle.item_factors = np.array(before.embedding.item_factors, copy=True)
    oracle.fit(expected.apply(without.matrix), show_progress=False)
    target = oracle.user_factors @ oracle.item_factors[touched].T
    was = before.embedding.user_factors[keep] @ before.embedding.item_factors[touched].T
    now = patched.embedding.user_factors @ patched.embedding.item_factors[touched].T
    assert np.linalg.norm(now - target) < np.linalg.norm(was - target)

    # The retrain the erasure requested: the same IDF, and exactly a fresh fit on the
    # data without the subject, weighted by the same definition.
    cfg = modeling_settings(tenant)
    train, _ = holdout_split(without.matrix, without.last_seen, cfg.holdout_fraction)
    bare = make_als(params)
    bare.fit(InputWeighting.of(params, train).apply(train), show_progress=False)
    bare.iterations = 1  # the platform's warm-started pass on the full data
    bare.fit(expected.apply(without.matrix), show_progress=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert start_due_retrains() == 1
    retrained = ModelVersion.objects.for_tenant(tenant).get(status=ModelVersion.Status.ACTIVE)
    assert retrained.number == 2
    new = _load(retrained).embedding
    np.testing.assert_array_equal(new.weighting.idf, expected.idf)
    assert new.weighting.average_length == expected.average_length
    assert np.array_equal(new.item_factors, bare.item_factors)  # bit for bit
    arrays = artifacts.load(retrained.artifact_path, retrained.artifact_sha256)
    assert arrays.embedding.weighting.scheme == scheme
