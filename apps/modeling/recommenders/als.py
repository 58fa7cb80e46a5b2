"""ALS matrix factorization (implicit's ``AlternatingLeastSquares``, CPU, one BLAS thread).

Its item factors back the on-device bundle and the lineage export, so it is fitted in every
training. The served ALS is the candidate fitted on the training split, then warm-started for
``FOLD_IN_ITERATIONS`` more iteration(s) on the full matrix (implicit's ``fit`` continues from
factors already set): the held-out newest interactions shape the served factors without a
second full fit.

**Input weighting** (issue 15: BM25/TF-IDF, a hyper-parameter of the search): ALS may read
its interactions re-weighted, ``params["weighting"]`` one of :data:`WEIGHTINGS`. It is declared
once, :class:`InputWeighting`, and every place that hands ALS interactions goes through the
model's own :meth:`AlsRecommender.weighted`: the fits, a session's or a champion's histories
folded in at serving time, explanations, the erasure patch, and the device bundle (which
ships the per-item IDF and the formula's constants). Its statistics (IDF per item, average
subject length) are those of the matrix the model was last fitted on, and depend only on
*which* cells are stored (never on their weights): after an erasure the patch recomputes
them from the remaining interactions, so the served IDF is, bit for bit, the one a fit on the
data without the subject computes (``tests/modeling/test_als_weighting.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from django.utils.translation import gettext_lazy

from apps.modeling.recommenders.base import IterationCallback, Recommender, Setting, register

if TYPE_CHECKING:
    from apps.modeling.config import ModelingSettings

FOLD_IN_ITERATIONS = 1

#: ALS's input weightings: ``none`` (the weights as aggregated), ``tfidf`` (``√w · idf``)
#: and ``bm25`` (``w (K1 + 1) / (K1 · norm + w) · idf``, ``norm = 1 - B + B · len / avg len``).
WEIGHTINGS = ("none", "tfidf", "bm25")
#: BM25's constants as implicit's ``bm25_weight`` defaults them for ALS input (K1 100: the
#: weight is hardly saturated; B 0.8: long histories count for less).
BM25_K1, BM25_B = 100.0, 0.8


def _shape_statistics(matrix: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Distinct subjects per column, distinct items per row, and the number of subjects with
    any interaction: functions of which cells are stored only."""
    matrix = matrix.tocsr()
    lengths = np.diff(matrix.indptr)
    df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    return df, lengths, int(np.count_nonzero(lengths))


@dataclass(frozen=True)
class InputWeighting:
    """How ALS weights the interactions it reads (the one declaration; module docstring).

    ``idf[j] = ln(1 + N / df_j)`` with ``N`` the subjects with any interaction and ``df_j``
    the subjects who touched item ``j`` (always positive: ALS reads a non-positive weight as
    a dislike); a subject's BM25 length is their number of distinct items, ``average_length``
    its mean over those ``N`` subjects. ``idf`` is ``None`` for ``none``."""

    scheme: str = "none"
    k1: float = BM25_K1
    b: float = BM25_B
    idf: np.ndarray | None = None
    average_length: float = 1.0

    @staticmethod
    def scheme_of(params: Mapping[str, Any]) -> str:
        scheme = str(params.get("weighting", "none"))
        return scheme if scheme in WEIGHTINGS else "none"

    @classmethod
    def of(cls, params: Mapping[str, Any], matrix: Any) -> InputWeighting:
        """The weighting ``params`` name, with the statistics of ``matrix``."""
        scheme = cls.scheme_of(params)
        k1, b = float(params.get("bm25_k1", BM25_K1)), float(params.get("bm25_b", BM25_B))
        if scheme == "none":
            return cls(scheme, k1, b)
        df, lengths, n = _shape_statistics(matrix)
        idf = np.log1p(n / np.maximum(df, 1)).astype(np.float32)
        average = float(lengths.sum() / n) if n else 1.0
        return cls(scheme, k1, b, idf, average)

    def apply(self, matrix: Any) -> Any:
        """``matrix`` (rows = histories, float weights) as ALS reads it (float32 CSR)."""
        matrix = matrix.tocsr().astype(np.float32)
        if self.scheme == "none" or self.idf is None:
            return matrix
        data = matrix.data.astype(np.float64)
        idf = self.idf.astype(np.float64)[matrix.indices]
        if self.scheme == "tfidf":
            data = np.sqrt(np.maximum(data, 0.0)) * idf
        else:
            lengths = np.diff(matrix.indptr).astype(np.float64)
            norm = (1.0 - self.b) + self.b * lengths / self.average_length
            data = data * (self.k1 + 1.0) / (self.k1 * np.repeat(norm, np.diff(
                matrix.indptr)) + data) * idf
        out = matrix.copy()
        out.data = data.astype(np.float32)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        if self.idf is None:
            return {}
        return {"als_idf": np.ascontiguousarray(self.idf, dtype=np.float32),
                "als_average_length": np.array([self.average_length], dtype=np.float64)}

    @classmethod
    def from_arrays(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                    ) -> InputWeighting:
        scheme = cls.scheme_of(params)
        k1, b = float(params.get("bm25_k1", BM25_K1)), float(params.get("bm25_b", BM25_B))
        if scheme == "none" or "als_idf" not in arrays:
            return cls("none", k1, b)
        return cls(scheme, k1, b, np.asarray(arrays["als_idf"], dtype=np.float32),
                   float(np.asarray(arrays["als_average_length"]).ravel()[0]))

    def bundle(self, active: np.ndarray) -> dict[str, Any]:
        """What an on-device solve needs to weight its own history (docs/modeling.md)."""
        if self.idf is None:
            return {"scheme": "none"}
        return {"scheme": self.scheme, "k1": self.k1, "b": self.b,
                "average_length": self.average_length,
                "idf": self.idf[active].astype(np.float64).tolist()}


def make_als(params: Mapping[str, Any]) -> Any:
    """An unfitted implicit ALS with ``params`` (float32, no loss computed)."""
    from implicit.cpu.als import AlternatingLeastSquares

    from apps.modeling.blas import ensure_single_threaded_blas

    ensure_single_threaded_blas()  # SciPy's own OpenBLAS is loaded by now

    return AlternatingLeastSquares(
        factors=int(params["factors"]), regularization=float(params["regularization"]),
        alpha=float(params["alpha"]), iterations=int(params["iterations"]),
        random_state=int(params["random_state"]), num_threads=int(params["num_threads"]),
        dtype=np.float32, calculate_training_loss=False)


@register
class AlsRecommender(Recommender):
    name = "als"
    label = gettext_lazy("ALS (implicit)")
    logic = gettext_lazy(
        "It uses collaborative filtering (alternating least squares, \"ALS\"): from "
        "everyone's weighted interactions it learns a short list of numbers per person "
        "and per item, so that people who interacted with similar items get similar "
        "numbers; your recommendations are the items whose numbers best match yours and "
        "that you have not interacted with yet.")
    settings = {
        "model_factors": Setting(64, int, 2, 1024),
        "model_regularization": Setting(0.01, float, 0.0, 1e4),
        "model_alpha": Setting(1.0, float, 1e-6, 1e4),
        "model_iterations": Setting(15, int, 1, 10000),
    }
    embeds_items = True

    def __init__(self, params: Mapping[str, Any], estimator: Any = None,
                 weighting: InputWeighting | None = None) -> None:
        super().__init__(params)
        self._estimator = estimator
        #: The input weighting with the statistics of the matrix last fitted on.
        self.weighting = weighting or InputWeighting(InputWeighting.scheme_of(params))

    @classmethod
    def base_params(cls, cfg: ModelingSettings) -> dict[str, Any]:
        own = cfg.algorithm
        return {"factors": own["model_factors"], "regularization": own["model_regularization"],
                "alpha": own["model_alpha"], "iterations": own["model_iterations"],
                "weighting": "none",
                "random_state": cfg.random_state, "num_threads": cfg.threads}

    @classmethod
    def search_space(cls, cfg: ModelingSettings) -> list[dict[str, Any]]:
        """BM25-weighted input (issue 15 item 2; it led the ALS grid of bench/quality.py)
        and lower confidence scaling (it won the platform's search on Online Retail before)
        first, then TF-IDF-weighted input, more factors and stronger regularization, alone
        and combined. The weighted candidates' λ and alpha are absolute:
        BM25/TF-IDF weights are on their own scale (IDF times at most K1 + 1), whatever
        the tenant's event weights; λ 50 and alpha 5 led Online Retail's validation grid."""
        base = cls.base_params(cfg)
        factors, reg, alpha = base["factors"], base["regularization"], base["alpha"]
        bm25 = {**base, "weighting": "bm25", "bm25_k1": BM25_K1, "bm25_b": BM25_B,
                "factors": factors * 2, "regularization": 50.0, "alpha": 5.0}
        tfidf = {**base, "weighting": "tfidf", "factors": factors * 2,
                 "regularization": 50.0, "alpha": 5.0}
        return [base,
                bm25,
                {**base, "alpha": alpha * 0.2},
                tfidf,
                {**base, "factors": factors * 2},
                {**base, "regularization": max(reg * 10, 0.1)},
                {**bm25, "factors": factors * 4},
                {**base, "alpha": alpha * 0.2, "factors": factors * 2},
                {**bm25, "regularization": 10.0, "alpha": 1.0},
                {**base, "alpha": alpha * 0.05, "regularization": max(reg * 100, 1.0)},
                {**tfidf, "factors": factors * 4},
                {**base, "factors": factors * 4, "regularization": max(reg * 100, 1.0)}]

    @property
    def estimator(self) -> Any:
        """The implicit object (after a fit), or one around loaded factors (one thread)."""
        if self._estimator is None:
            self._estimator = make_als({**self.params, "num_threads": 1})
        return self._estimator

    @property
    def item_factors(self) -> np.ndarray:
        return self.estimator.item_factors

    @property
    def user_factors(self) -> np.ndarray:
        return self.estimator.user_factors

    def weighted(self, matrix: Any) -> Any:
        """``matrix`` (histories: the artifact's rows, a session, a champion's hold-out
        histories) weighted as this model's input was (:class:`InputWeighting`)."""
        return self.weighting.apply(matrix)

    def fit(self, matrix: Any, on_iteration: IterationCallback | None = None) -> None:
        self._estimator = make_als(self.params)
        self.weighting = InputWeighting.of(self.params, matrix)
        matrix = self.weighted(matrix)
        iterations = int(self.params["iterations"])

        def callback(iteration: int, _elapsed: float, _loss: Any) -> None:
            if on_iteration:
                on_iteration(iteration + 1, iterations)

        self._estimator.fit(matrix, show_progress=False, callback=callback)

    def fit_full(self, matrix: Any, iterations: int | None = None) -> AlsRecommender:
        """Warm start: ``FOLD_IN_ITERATIONS`` (or ``iterations``) more on ``matrix``."""
        model = self.estimator
        fitted = model.iterations
        model.iterations = FOLD_IN_ITERATIONS if iterations is None else iterations
        self.weighting = InputWeighting.of(self.params, matrix)
        try:
            model.fit(self.weighted(matrix), show_progress=False)
        finally:
            model.iterations = fitted
        return self

    def frozen(self) -> AlsRecommender:
        model = copy.copy(self.estimator)
        model.user_factors = self.estimator.user_factors.copy()
        model.item_factors = self.estimator.item_factors.copy()
        return AlsRecommender(self.params, model, self.weighting)

    def top_items(self, users: np.ndarray, user_items: Any, n: int) -> np.ndarray:
        ids, _ = self.estimator.recommend(users, user_items, N=n,
                                          filter_already_liked_items=True)
        return ids

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"item_factors": np.ascontiguousarray(self.item_factors, dtype=np.float32),
                "user_factors": np.ascontiguousarray(self.user_factors, dtype=np.float32),
                **self.weighting.to_arrays()}

    @classmethod
    def from_arrays(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    n_items: int) -> AlsRecommender:
        model = cls(params, weighting=InputWeighting.from_arrays(params, arrays))
        model.estimator.item_factors = arrays["item_factors"]
        model.estimator.user_factors = arrays["user_factors"]
        return model

    @cached_property
    def _normed(self) -> np.ndarray:
        factors = self.item_factors.astype(np.float32)
        norms = np.linalg.norm(factors, axis=1, keepdims=True)
        return factors / np.where(norms > 0, norms, 1.0)

    def score_subject(self, row: int, user_items: Any) -> np.ndarray:
        return self.item_factors @ self.user_factors[row]

    def score_session(self, interactions: Any) -> np.ndarray:
        return self.item_factors @ self.estimator.recalculate_user(
            0, self.weighted(interactions))

    def score_rows(self, interactions: Any) -> np.ndarray:
        rows = self.weighted(interactions)
        users = self.estimator.recalculate_user(np.arange(rows.shape[0]), rows)
        return np.asarray(users @ self.item_factors.T, dtype=np.float32)

    def similar(self, column: int) -> np.ndarray:
        return self._normed @ self._normed[column]

    def explain(self, row: int, user_items: Any, columns: np.ndarray, n: int
                ) -> list[list[tuple[int, float]]]:
        explained = []
        user_weights = None
        own = self.weighted(user_items[row])  # explain() scales it by alpha: one row only
        for col in columns.tolist():
            _, contributions, user_weights = self.estimator.explain(
                0, own, col, user_weights=user_weights, N=n)
            explained.append([(int(j), float(w)) for j, w in contributions])
        return explained

    def without_subject(self, row: int, remaining: Any, touched: np.ndarray
                        ) -> AlsRecommender:
        """The subject's factor row dropped and the factors of the items whose input
        changed recomputed without them: an exact ALS half-step (``partial_fit_items``)
        with the remaining users' factors. Unweighted, those are the items they touched.
        Weighted, the statistics are recomputed from ``remaining`` (the IDF and average
        length without the subject, as a fit on it computes them) and every item's
        weights changed with them (``N`` and the average length are in every weight), so
        every item is recomputed: one item half-step of a fit."""
        keep = np.ones(self.user_factors.shape[0], dtype=bool)
        keep[row] = False
        weighting = InputWeighting.of(self.params, remaining)
        if weighting.scheme != "none":
            touched = np.arange(remaining.shape[1], dtype=np.int64)
        model = make_als({**self.params, "num_threads": 1})
        model.user_factors = np.ascontiguousarray(self.user_factors[keep])
        model.item_factors = np.array(self.item_factors, copy=True)
        if len(touched) and remaining.shape[0]:
            model.partial_fit_items(touched, weighting.apply(remaining).T.tocsr()[touched])
        model.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        model.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        return AlsRecommender(self.params, model, weighting)

    def device_bundle(self, active: np.ndarray) -> dict[str, Any]:
        factors = self.item_factors.astype(np.float64)
        regularization = float(self.params["regularization"])
        gram = factors.T @ factors + regularization * np.eye(factors.shape[1])
        return {"factors": int(factors.shape[1]), "regularization": regularization,
                "alpha": float(self.params["alpha"]),
                "weighting": self.weighting.bundle(active),
                "item_factors": np.round(self.item_factors[active], 6).tolist(),
                "gram": np.round(gram, 6).tolist()}
