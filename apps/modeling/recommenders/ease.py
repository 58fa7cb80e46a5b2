"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): a closed-form items x items model.

With ``X`` the users x items matrix (binary: who touched what) and ``G = XᵀX`` its Gram
matrix, ``P = (G + λI)⁻¹`` and ``B = I - P·diag(1/diag(P))``: the item-item weights with a
zero diagonal (an item may not predict itself). A subject's scores are ``x_u B``.

Computation (one BLAS thread, float32 for the dense part):

* ``G`` is summed in float64 from the sparse binary ``X`` (exact integer counts), then
  written into one dense float32 array (counts below 2**24 are exact in float32);
* ``λ`` is added to its diagonal, LAPACK ``spotrf``/``spotri`` factor and invert it in
  place, the triangle is mirrored block by block and the columns are scaled in place: ``B``
  is the same array. Peak memory: the sparse ``G`` (12 bytes per co-bought pair, at most
  ``n²``) plus ``4·n²`` bytes, i.e. 1.6 GB of dense matrix at 20,000 items; ``B`` itself is
  ``4·n²`` bytes in the artifact and in each serving process. Time is ``O(n³)``.

Hence the catalog guard: above ``model_ease_max_items`` (default 20,000) the candidate is
not fitted and the reason is recorded on the version's search (``skip_reason``).

Erasure is exact: EASE depends on the data only through ``G``, so ``without_subject``
refits from the remaining interactions (``G`` without the subject's row, solved again along
the same path); the result equals, bit for bit, a model trained from scratch without them
(``tests/modeling/test_ease.py``). It costs a full solve (``O(n³)``, seconds at a few
thousand items), not a rank-one update, which would not be bit-exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from django.utils.translation import gettext_lazy

from apps.modeling.recommenders.base import IterationCallback, Recommender, Setting, register

if TYPE_CHECKING:
    from apps.modeling.config import ModelingSettings

#: Rows per block when the dense Gram matrix is filled and mirrored, and users per block
#: when the evaluation scores subjects (bounds the temporary arrays).
_BLOCK = 512


def binary(matrix: Any) -> Any:
    """``X``: 1.0 where the subject touched the item (float64 CSR, indices sorted)."""
    import scipy.sparse as sp

    matrix = matrix.tocsr()
    x = sp.csr_matrix((np.ones(matrix.nnz, dtype=np.float64), matrix.indices.copy(),
                       matrix.indptr.copy()), shape=matrix.shape)
    x.eliminate_zeros()
    x.sort_indices()
    return x


def gram(matrix: Any) -> np.ndarray:
    """``XᵀX`` of the binary ``X`` as a dense float32 array: co-occurrence counts, summed in
    float64 over the subjects in row order, so a subject's removal removes only their
    terms."""
    x = binary(matrix)
    co = (x.T.tocsr() @ x).tocsr()
    n = x.shape[1]
    dense = np.zeros((n, n), dtype=np.float32)
    for start in range(0, n, _BLOCK):
        dense[start:start + _BLOCK] = co[start:start + _BLOCK].toarray()
    return dense


def solve(gram_matrix: np.ndarray, lam: float) -> np.ndarray:
    """``B`` from the dense float32 ``G`` (overwritten: ``B`` is the same array)."""
    from scipy.linalg import lapack

    from apps.modeling.blas import ensure_single_threaded_blas

    ensure_single_threaded_blas()
    a = gram_matrix
    n = a.shape[0]
    if n == 0:
        return a
    a[np.diag_indices(n)] += np.float32(lam)
    # ``a`` is C-ordered and symmetric: its transpose is the same matrix, Fortran-ordered,
    # which LAPACK overwrites in place. Its "upper" triangle is ``a``'s lower one.
    factor, info = lapack.spotrf(a.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise ArithmeticError(f"EASE: Cholesky factorization failed (info={info})")
    inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise ArithmeticError(f"EASE: inversion failed (info={info})")
    if not np.shares_memory(inverse, a):  # not expected: the wrapper copied
        a[...] = inverse.T
    for start in range(0, n, _BLOCK):  # mirror the lower triangle into the upper one
        end = min(start + _BLOCK, n)
        block = a[start:end, start:end]
        block[...] = np.tril(block) + np.tril(block, -1).T
        a[start:end, end:] = a[end:, start:end].T
    diagonal = np.diagonal(a).copy()
    a /= -diagonal[None, :]
    np.fill_diagonal(a, 0.0)
    return a


def fit_weights(matrix: Any, lam: float) -> np.ndarray:
    """``B`` for the interactions ``matrix`` (users x items) and ``λ``."""
    return solve(gram(matrix), lam)


@register
class EaseRecommender(Recommender):
    name = "ease"
    label = gettext_lazy("EASE (closed-form item-item)")
    logic = gettext_lazy(
        "It uses an item-to-item model (EASE): from everyone's interactions it learns, "
        "for every pair of items, how much having chosen one predicts choosing the other; "
        "your recommendations are the items best predicted by the items you interacted "
        "with, that you have not interacted with yet.")
    settings = {
        # λ chosen on validation data of UCI Online Retail (bench/quality.py, bench/README.md).
        "model_ease_lambda": Setting(200.0, float, 1e-3, 1e7),
        # Above this many items EASE is skipped (memory 4·n² bytes, time O(n³)).
        "model_ease_max_items": Setting(20_000, int, 2, 200_000),
    }

    uses_weights = False  # X is binary: recency weighting changes nothing

    def __init__(self, params: Mapping[str, Any], weights: np.ndarray | None = None) -> None:
        super().__init__(params)
        self.weights = weights  # B: items x items, float32

    @classmethod
    def base_params(cls, cfg: ModelingSettings) -> dict[str, Any]:
        own = cfg.algorithm
        return {"lambda": own["model_ease_lambda"], "max_items": own["model_ease_max_items"]}

    @classmethod
    def search_space(cls, cfg: ModelingSettings) -> list[dict[str, Any]]:
        """λ around the tenant's own (200 led on Online Retail's validation split)."""
        base = cls.base_params(cfg)
        return [base, *({**base, "lambda": base["lambda"] * f} for f in (2.5, 0.5, 5.0, 0.25))]

    @classmethod
    def skip_reason(cls, params: Mapping[str, Any], matrix: Any) -> str | None:
        n_items, limit = int(matrix.shape[1]), int(params["max_items"])
        if n_items > limit:
            gigabytes = 4 * n_items**2 / 1e9
            return (f"{n_items} items exceed model_ease_max_items={limit} (EASE holds a "
                    f"dense {n_items} x {n_items} float32 matrix, {gigabytes:.1f} GB, and "
                    "solves it in O(n³))")
        return None

    def fit(self, matrix: Any, on_iteration: IterationCallback | None = None) -> None:
        reason = self.skip_reason(self.params, matrix)
        if reason:
            raise ValueError(reason)
        self.weights = fit_weights(matrix, float(self.params["lambda"]))  # not iterative

    def fit_full(self, matrix: Any) -> EaseRecommender:
        """A fresh fit on the full data (closed form: nothing to warm-start)."""
        served = EaseRecommender(self.params)
        served.fit(matrix)
        return served

    def _scores(self, rows: Any) -> np.ndarray:
        """``X_rows · B`` for binary rows (a CSR block): sums of ``B``'s rows."""
        x = binary(rows).astype(np.float32)
        return np.asarray(x @ self.weights, dtype=np.float32)

    def top_items(self, users: np.ndarray, user_items: Any, n: int) -> np.ndarray:
        user_items = user_items.tocsr()
        out = np.empty((user_items.shape[0], n), dtype=np.int64)
        for start in range(0, user_items.shape[0], _BLOCK):
            block = user_items[start:start + _BLOCK]
            scores = self._scores(block)
            rows, cols = block.nonzero()
            scores[rows, cols] = -np.inf
            part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
            order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1,
                               kind="stable")
            out[start:start + len(scores)] = np.take_along_axis(part, order, axis=1)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"ease_weights": np.ascontiguousarray(self.weights, dtype=np.float32)}

    @classmethod
    def from_arrays(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    n_items: int) -> EaseRecommender:
        return cls(params, arrays["ease_weights"])

    def score_subject(self, row: int, user_items: Any) -> np.ndarray:
        return self._scores(user_items[row])[0]

    def score_session(self, interactions: Any) -> np.ndarray:
        return self._scores(interactions)[0]

    def score_rows(self, interactions: Any) -> np.ndarray:
        return self._scores(interactions)

    def similar(self, column: int) -> np.ndarray:
        """How much ``column`` predicts each item (its row of ``B``)."""
        return np.asarray(self.weights[column], dtype=np.float32)

    def explain(self, row: int, user_items: Any, columns: np.ndarray, n: int
                ) -> list[list[tuple[int, float]]]:
        """Per recommended item ``i``, the subject's items ``j`` with the largest positive
        ``B[j, i]`` (each is one term of the item's score)."""
        start, end = user_items.indptr[row], user_items.indptr[row + 1]
        liked = np.sort(user_items.indices[start:end])
        block = self.weights[np.ix_(liked, np.asarray(columns, dtype=np.int64))]
        explained = []
        for k in range(len(columns)):
            contribution = block[:, k]
            best = np.argsort(-contribution, kind="stable")[:n]
            explained.append([(int(liked[j]), float(contribution[j]))
                              for j in best if contribution[j] > 0])
        return explained

    def without_subject(self, row: int, remaining: Any, touched: np.ndarray
                        ) -> EaseRecommender:
        """``G`` recomputed without the subject's row and solved again: the model trained
        without them, bit for bit (see the module docstring)."""
        patched = EaseRecommender(self.params)
        patched.fit(remaining)
        return patched
