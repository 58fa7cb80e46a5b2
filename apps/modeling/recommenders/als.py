"""ALS matrix factorization (implicit's ``AlternatingLeastSquares``, CPU, one BLAS thread).

Its item factors back the on-device bundle and the lineage export, so it is fitted in every
training. The served ALS is the candidate fitted on the training split, then warm-started for
``FOLD_IN_ITERATIONS`` more iteration(s) on the full matrix (implicit's ``fit`` continues from
factors already set): the held-out newest interactions shape the served factors without a
second full fit.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from apps.modeling.recommenders.base import IterationCallback, Recommender, Setting, register

if TYPE_CHECKING:
    from apps.modeling.config import ModelingSettings

FOLD_IN_ITERATIONS = 1


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
    label = "ALS (implicit)"
    logic = ("It uses collaborative filtering (alternating least squares, \"ALS\"): from "
             "everyone's weighted interactions it learns a short list of numbers per person "
             "and per item, so that people who interacted with similar items get similar "
             "numbers; your recommendations are the items whose numbers best match yours "
             "and that you have not interacted with yet.")
    settings = {
        "model_factors": Setting(64, int, 2, 1024),
        "model_regularization": Setting(0.01, float, 0.0, 1e4),
        "model_alpha": Setting(1.0, float, 1e-6, 1e4),
        "model_iterations": Setting(15, int, 1, 10000),
    }
    embeds_items = True

    def __init__(self, params: Mapping[str, Any], estimator: Any = None) -> None:
        super().__init__(params)
        self._estimator = estimator

    @classmethod
    def base_params(cls, cfg: ModelingSettings) -> dict[str, Any]:
        own = cfg.algorithm
        return {"factors": own["model_factors"], "regularization": own["model_regularization"],
                "alpha": own["model_alpha"], "iterations": own["model_iterations"],
                "random_state": cfg.random_state, "num_threads": cfg.threads}

    @classmethod
    def search_space(cls, cfg: ModelingSettings) -> list[dict[str, Any]]:
        """Lower confidence scaling first (it won on Online Retail, bench/README.md), then
        more factors and stronger regularization, alone and combined."""
        base = cls.base_params(cfg)
        factors, reg, alpha = base["factors"], base["regularization"], base["alpha"]
        return [base,
                {**base, "alpha": alpha * 0.2},
                {**base, "factors": factors * 2},
                {**base, "regularization": max(reg * 10, 0.1)},
                {**base, "alpha": alpha * 0.2, "factors": factors * 2},
                {**base, "alpha": alpha * 0.05, "regularization": max(reg * 100, 1.0)},
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

    def fit(self, matrix: Any, on_iteration: IterationCallback | None = None) -> None:
        self._estimator = make_als(self.params)
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
        try:
            model.fit(matrix.tocsr().astype(np.float32), show_progress=False)
        finally:
            model.iterations = fitted
        return self

    def frozen(self) -> AlsRecommender:
        model = copy.copy(self.estimator)
        model.user_factors = self.estimator.user_factors.copy()
        model.item_factors = self.estimator.item_factors.copy()
        return AlsRecommender(self.params, model)

    def top_items(self, users: np.ndarray, user_items: Any, n: int) -> np.ndarray:
        ids, _ = self.estimator.recommend(users, user_items, N=n,
                                          filter_already_liked_items=True)
        return ids

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"item_factors": np.ascontiguousarray(self.item_factors, dtype=np.float32),
                "user_factors": np.ascontiguousarray(self.user_factors, dtype=np.float32)}

    @classmethod
    def from_arrays(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    n_items: int) -> AlsRecommender:
        model = cls(params)
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
        return self.item_factors @ self.estimator.recalculate_user(0, interactions)

    def score_rows(self, interactions: Any) -> np.ndarray:
        rows = interactions.tocsr().astype(np.float32)
        users = self.estimator.recalculate_user(np.arange(rows.shape[0]), rows)
        return np.asarray(users @ self.item_factors.T, dtype=np.float32)

    def similar(self, column: int) -> np.ndarray:
        return self._normed @ self._normed[column]

    def explain(self, row: int, user_items: Any, columns: np.ndarray, n: int
                ) -> list[list[tuple[int, float]]]:
        explained = []
        user_weights = None
        own = user_items[row]  # explain() scales what it is given by alpha: one row only
        for col in columns.tolist():
            _, contributions, user_weights = self.estimator.explain(
                0, own, col, user_weights=user_weights, N=n)
            explained.append([(int(j), float(w)) for j, w in contributions])
        return explained

    def without_subject(self, row: int, remaining: Any, touched: np.ndarray
                        ) -> AlsRecommender:
        """The subject's factor row dropped and the factors of the items they touched
        recomputed without them: an exact ALS half-step (``partial_fit_items``) with the
        remaining users' factors."""
        keep = np.ones(self.user_factors.shape[0], dtype=bool)
        keep[row] = False
        model = make_als({**self.params, "num_threads": 1})
        model.user_factors = np.ascontiguousarray(self.user_factors[keep])
        model.item_factors = np.array(self.item_factors, copy=True)
        if len(touched) and remaining.shape[0]:
            model.partial_fit_items(touched, remaining.T.tocsr()[touched])
        model.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        model.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        return AlsRecommender(self.params, model)

    def device_bundle(self, active: np.ndarray) -> dict[str, Any]:
        factors = self.item_factors.astype(np.float64)
        regularization = float(self.params["regularization"])
        gram = factors.T @ factors + regularization * np.eye(factors.shape[1])
        return {"factors": int(factors.shape[1]), "regularization": regularization,
                "alpha": float(self.params["alpha"]),
                "item_factors": np.round(self.item_factors[active], 6).tolist(),
                "gram": np.round(gram, 6).tolist()}
