"""The per-subject recency order behind the hold-out split and the DP contribution bound."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from apps.modeling.services.algorithms import recency_rank


def _reference_rank(matrix: Any, last_seen: np.ndarray) -> np.ndarray:
    """A plain loop: within each row, newest first, ties by column (CSR order)."""
    rank = np.empty(len(last_seen), dtype=np.int64)
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        order = sorted(range(start, end), key=lambda k: (-last_seen[k], matrix.indices[k]))
        for position, k in enumerate(order):
            rank[k] = position
    return rank


def _random_matrix(seed: int) -> Any:
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    return sp.random(40, 30, density=0.3, format="csr", random_state=rng, dtype=np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_whole_microsecond_stamps_with_ties_rank_like_the_reference(seed):
    matrix = _random_matrix(seed)
    rng = np.random.default_rng(seed)
    # Database timestamps: whole microseconds, many equal (ties go by column).
    micros = 1_700_000_000_000_000 + rng.integers(0, 50, matrix.nnz) * 1_000_003
    last_seen = micros / 1e6

    assert np.array_equal(recency_rank(matrix, last_seen), _reference_rank(matrix, last_seen))


@pytest.mark.parametrize("stamps", ["sub_microsecond", "huge_span", "negative"])
def test_stamps_the_integer_key_cannot_hold_rank_like_the_reference(stamps):
    matrix = _random_matrix(7)
    rng = np.random.default_rng(7)
    base = rng.integers(0, 5, matrix.nnz).astype(np.float64)
    last_seen = {"sub_microsecond": 1.7e9 + base * 1e-7,
                 "huge_span": np.where(base > 2, 1e15, -1e15) + base,
                 "negative": -1.7e9 + base}[stamps]

    assert np.array_equal(recency_rank(matrix, last_seen), _reference_rank(matrix, last_seen))
