"""BM25-weighted item-kNN (implicit's ``BM25Recommender``): an items x items similarity.

A subject's scores are their interactions times the similarity; an item scores nothing
outside the neighbourhoods of the items it is given, so only positive scores are candidates.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from django.utils.translation import gettext_lazy

from apps.modeling.recommenders.base import IterationCallback, Recommender, Setting, register

if TYPE_CHECKING:
    from apps.modeling.config import ModelingSettings


def make_bm25(params: Mapping[str, Any]) -> Any:
    from implicit.nearest_neighbours import BM25Recommender

    return BM25Recommender(K=int(params["K"]), K1=float(params.get("K1", 1.2)),
                           B=float(params.get("B", 0.75)),
                           num_threads=int(params.get("num_threads", 1)))


@register
class Bm25Recommender(Recommender):
    name = "bm25"
    label = gettext_lazy("BM25 item-kNN (implicit)")
    logic = gettext_lazy(
        "It uses item-to-item collaborative filtering (BM25-weighted nearest neighbours): "
        "from everyone's weighted interactions it measures how often two items are chosen "
        "by the same people, counting very popular items and very active people for less; "
        "your recommendations are the items most often chosen together with the items you "
        "interacted with, that you have not interacted with yet.")
    settings = {"model_bm25_k": Setting(100, int, 1, 10000)}
    positive_scores_only = True

    def __init__(self, params: Mapping[str, Any], estimator: Any = None,
                 similarity: Any = None) -> None:
        super().__init__(params)
        self._estimator = estimator
        self.similarity = similarity if estimator is None else estimator.similarity

    @classmethod
    def base_params(cls, cfg: ModelingSettings) -> dict[str, Any]:
        return {"K": cfg.algorithm["model_bm25_k"], "K1": 1.2, "B": 0.75,
                "num_threads": cfg.threads}

    @classmethod
    def search_space(cls, cfg: ModelingSettings) -> list[dict[str, Any]]:
        """Larger neighbourhoods first (K 1000-3000 led on Online Retail's validation
        split, bench/README.md), then the length normalization B."""
        base = cls.base_params(cfg)
        space = [base, *({**base, "K": k} for k in (1000, 3000, 400) if k != base["K"])]
        return space + [{**space[1], "B": b} for b in (0.5, 0.9)]

    def fit(self, matrix: Any, on_iteration: IterationCallback | None = None) -> None:
        model = make_bm25(self.params)
        with warnings.catch_warnings():
            # implicit's own bm25_weight hands its kNN a COO matrix and then warns about it.
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(matrix.tocsr(), show_progress=False)
        self._estimator = model
        self.similarity = model.similarity

    def fit_full(self, matrix: Any) -> Bm25Recommender:
        """A fresh fit on the full data (a kNN has nothing to warm-start)."""
        served = Bm25Recommender(self.params)
        served.fit(matrix)
        return served

    def top_items(self, users: np.ndarray, user_items: Any, n: int) -> np.ndarray:
        ids, _ = self._estimator.recommend(users, user_items, N=n,
                                           filter_already_liked_items=True)
        return ids

    def to_arrays(self) -> dict[str, np.ndarray]:
        sim = self.similarity.tocsr()
        return {"sim_indptr": sim.indptr.astype(np.int64),
                "sim_indices": sim.indices.astype(np.int32),
                "sim_data": sim.data.astype(np.float32)}

    @classmethod
    def from_arrays(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    n_items: int) -> Bm25Recommender:
        import scipy.sparse as sp

        similarity = sp.csr_matrix(
            (arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]),
            shape=(n_items, n_items))
        return cls(params, similarity=similarity)

    def score_subject(self, row: int, user_items: Any) -> np.ndarray:
        return np.asarray((user_items[row] @ self.similarity).todense()).ravel()

    def score_session(self, interactions: Any) -> np.ndarray:
        return np.asarray((interactions @ self.similarity).todense()).ravel()

    def score_rows(self, interactions: Any) -> np.ndarray:
        return np.asarray((interactions.tocsr() @ self.similarity).todense(), dtype=np.float32)

    def similar(self, column: int) -> np.ndarray:
        return np.asarray(self.similarity[column].todense()).ravel()

    def explain(self, row: int, user_items: Any, columns: np.ndarray, n: int
                ) -> list[list[tuple[int, float]]]:
        start, end = user_items.indptr[row], user_items.indptr[row + 1]
        liked, weights = user_items.indices[start:end], user_items.data[start:end]
        block = self.similarity[liked][:, columns].toarray()  # liked x recommended
        explained = []
        for k in range(len(columns)):
            contribution = weights * block[:, k]
            best = np.argsort(-contribution, kind="stable")[:n]
            explained.append([(int(liked[j]), float(contribution[j]))
                              for j in best if contribution[j] > 0])
        return explained

    def without_subject(self, row: int, remaining: Any, touched: np.ndarray
                        ) -> Bm25Recommender:
        """The similarity recomputed from the remaining interactions."""
        patched = Bm25Recommender({**self.params, "num_threads": 1})
        patched.fit(remaining)
        patched.params = dict(self.params)
        return patched
