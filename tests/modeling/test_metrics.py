"""Ranking metrics and the popularity baseline: hand-computed values, and the vectorized
code against a plain per-subject loop on random data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from apps.modeling.services.algorithms import evaluate_popularity, metrics_from_recs


def _csr(rows: dict[int, list[int]], shape: tuple[int, int]) -> Any:
    import scipy.sparse as sp

    r = [u for u, items in rows.items() for _ in items]
    c = [i for items in rows.values() for i in items]
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=shape)


def _padded(*lists: list[int]) -> np.ndarray:
    return np.array([items + [-1] * (20 - len(items)) for items in lists])


def test_metrics_by_hand():
    test = _csr({0: [1, 4], 1: [0]}, (3, 6))
    recs = _padded([4, 2, 1], [3, 0])
    m = metrics_from_recs(recs, np.array([0, 1]), test, n_items=6)
    assert m["precision@10"] == pytest.approx((2 / 10 + 1 / 10) / 2)
    assert m["recall@20"] == pytest.approx(1.0)
    ndcg0 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert m["ndcg@10"] == pytest.approx((ndcg0 + 1 / np.log2(3)) / 2)
    assert m["map@10"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    assert m["coverage@10"] == pytest.approx(5 / 6)  # items 0-4 recommended


def _reference_popularity_recs(train: Any, users: np.ndarray) -> np.ndarray:
    popularity = np.asarray((train > 0).sum(0)).ravel()
    candidates = np.argsort(-popularity, kind="stable")
    candidates = candidates[popularity[candidates] > 0]
    recs = np.full((len(users), 20), -1, dtype=np.int64)
    for k, user in enumerate(users):
        seen = train.indices[train.indptr[user]:train.indptr[user + 1]]
        unseen = candidates[~np.isin(candidates, seen)][:20]
        recs[k, :len(unseen)] = unseen
    return recs


@pytest.mark.parametrize("seed", range(5))
def test_vectorized_metrics_match_a_plain_loop(seed):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_users, n_items = 60, int(rng.integers(15, 40))
    dense = rng.random((n_users, n_items)) < rng.uniform(0.05, 0.6)
    train = sp.csr_matrix(dense & (rng.random(dense.shape) < 0.8), dtype=np.float32)
    test = sp.csr_matrix(dense & ~train.toarray().astype(bool), dtype=np.float32)
    users = np.flatnonzero(np.diff(test.indptr) > 0)

    recs = _reference_popularity_recs(train, users)
    expected_hits = np.array([np.isin(recs[k], test.indices[test.indptr[u]:test.indptr[u + 1]])
                              for k, u in enumerate(users)]) & (recs >= 0)
    n_test = np.diff(test.indptr)[users]
    assert evaluate_popularity(train, test, users)["recall@20"] == pytest.approx(
        float((expected_hits.sum(1) / n_test).mean()))
    assert metrics_from_recs(recs, users, test, n_items) == evaluate_popularity(
        train, test, users)
