"""Fitting, evaluating and choosing models: pure functions of matrices (no database).

* Hold-out: for every subject, the newest ``fraction`` of their distinct items (by the last
  time they touched each) is held out (``floor(n * fraction)``: subjects with fewer than
  ``1 / fraction`` items stay entirely in training).
* Metrics on the held-out items, seen items excluded: precision@10, recall@20, NDCG@10,
  MAP@10 and catalog coverage@10, for the model and for a popularity baseline.
* Candidates: every registered algorithm (``apps.modeling.recommenders``) the tenant allows,
  and those that embed items whether allowed or not; the tenant's parameters first, then a
  small grid while the search budget lasts; the best NDCG@10 wins. Every algorithm is used
  only through the ``Recommender`` interface.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from apps.modeling.recommenders import Recommender, get_recommender, recommenders

if TYPE_CHECKING:
    from apps.modeling.config import ModelingSettings


@dataclass
class Candidate:
    algorithm: str
    params: dict[str, Any]
    model: Recommender | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    fit_s: float = 0.0
    skipped: str = ""  # why it was not fitted (``Recommender.skip_reason``)
    evaluation: Future[dict[str, float]] | None = field(default=None, repr=False)

    @property
    def ndcg(self) -> float:
        return float(self.metrics.get("ndcg@10", 0.0))

    @property
    def label(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items())
                          if k not in {"random_state", "num_threads"})
        return f"{self.algorithm}({inner})"

    def summary(self) -> dict[str, Any]:
        summary = {"algorithm": self.algorithm, "params": self.params,
                   "ndcg@10": round(self.ndcg, 6), "fit_s": round(self.fit_s, 3)}
        if self.skipped:
            summary["skipped"] = self.skipped
        return summary


# --- Split ---------------------------------------------------------------------------------


def recency_rank(matrix: Any, last_seen: np.ndarray) -> np.ndarray:
    """For each stored interaction (CSR order), its position among its row's, newest first
    (0 = the newest; ties by column)."""
    sizes = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), sizes)
    order = _newest_first_by_row(rows, np.asarray(last_seen, dtype=np.float64))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], sizes)
    return rank


def _newest_first_by_row(rows: np.ndarray, last_seen: np.ndarray) -> np.ndarray:
    """The stable order by (row, newest first). Timestamps from the database are whole
    microseconds: one int64 key ``row * span + (newest - t)`` sorts in a quarter of the
    time of a two-key ``lexsort`` (2M interactions: 0.17 s against 0.67 s). Anything else
    (sub-microsecond values, a span that could overflow) takes the ``lexsort``."""
    if len(last_seen):
        micros = np.rint(last_seen * 1e6)
        if np.isfinite(micros).all() and np.abs(micros).max() < 2.0**53:
            micros = micros.astype(np.int64)
            newest, span = int(micros.max()), int(micros.max() - micros.min()) + 1
            if (np.array_equal(micros / 1e6, last_seen)
                    and (int(rows[-1]) + 1) * span < 2**62):
                return np.argsort(rows * span + (newest - micros), kind="stable")
    return np.lexsort((-last_seen, rows))


def holdout_split(matrix: Any, last_seen: np.ndarray, fraction: float,
                  rank: np.ndarray | None = None) -> tuple[Any, Any]:
    """``(train, test)`` CSR matrices of the same shape (see the module docstring)."""
    import scipy.sparse as sp

    matrix = matrix.tocsr()
    rank = recency_rank(matrix, last_seen) if rank is None else rank
    sizes = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), sizes)
    is_test = rank < np.floor(np.repeat(sizes, sizes) * fraction).astype(np.int64)

    def part(mask: np.ndarray) -> Any:
        # Masking CSR-ordered entries keeps them CSR-ordered: no conversion needed.
        indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[mask], minlength=matrix.shape[0]), out=indptr[1:])
        return sp.csr_matrix((matrix.data[mask].astype(np.float32), matrix.indices[mask],
                              indptr), shape=matrix.shape)

    return part(~is_test), part(is_test)


# --- Evaluation ----------------------------------------------------------------------------


def eval_users(test: Any, max_users: int) -> np.ndarray:
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if len(users) > max_users:  # an evenly spaced, deterministic sample
        users = users[np.linspace(0, len(users) - 1, max_users).astype(np.int64)]
    return users


def _stored(matrix: Any, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``matrix[users[k], items[k, j]]`` is stored, for every k and j, in one vectorized
    pass: the users' entries as sorted ``row * n_items + column`` codes, searched
    (``items`` may hold -1, which matches nothing)."""
    n_items = matrix.shape[1]
    users = np.asarray(users, dtype=np.int64)
    starts, lengths = matrix.indptr[users], np.diff(matrix.indptr)[users]
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    entries = offsets + np.arange(int(lengths.sum()), dtype=np.int64)
    stored = np.sort(np.repeat(users, lengths) * n_items + matrix.indices[entries])
    asked = users[:, None] * n_items + items
    if not len(stored):
        return np.zeros(asked.shape, dtype=bool)
    found = np.minimum(np.searchsorted(stored, asked), len(stored) - 1)
    return (stored[found] == asked) & (items >= 0)


def metrics_from_recs(recs: np.ndarray, users: np.ndarray, test: Any,
                      n_items: int) -> dict[str, float]:
    """Ranking metrics of ``recs`` (users x 20 item indices, best first; -1 = none)."""
    if not len(users):
        return {"precision@10": 0.0, "recall@10": 0.0, "recall@20": 0.0, "ndcg@10": 0.0,
                "map@10": 0.0, "coverage@10": 0.0, "users": 0}
    hits = _stored(test, users, recs) & (recs >= 0)
    n_test = np.diff(test.indptr)[users].astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, 12))
    dcg = (hits[:, :10] * discount).sum(1)
    ideal = np.cumsum(discount)[np.minimum(n_test, 10).astype(np.int64) - 1]
    at10 = hits[:, :10]
    precision_at_k = np.cumsum(at10, 1) / np.arange(1, 11)
    ap = (precision_at_k * at10).sum(1) / np.minimum(n_test, 10)
    top10 = recs[:, :10]
    return {
        "precision@10": float(at10.sum(1).mean() / 10),
        "recall@10": float((at10.sum(1) / n_test).mean()),
        "recall@20": float((hits[:, :20].sum(1) / n_test).mean()),
        "ndcg@10": float((dcg / ideal).mean()),
        "map@10": float(ap.mean()),
        "coverage@10": float(len(np.unique(top10[top10 >= 0])) / max(n_items, 1)),
        "users": len(users),
    }


def _padded(ids: np.ndarray, width: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.shape[1] >= width:
        return ids[:, :width]
    return np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=-1)


def evaluate_model(model: Recommender, train: Any, test: Any, users: np.ndarray
                   ) -> dict[str, float]:
    if not len(users):
        return metrics_from_recs(np.zeros((0, 20), np.int64), users, test, train.shape[1])
    n = min(20, train.shape[1])
    ids = model.top_items(users, train[users], n)
    return metrics_from_recs(_padded(ids, 20), users, test, train.shape[1])


def evaluate_popularity(train: Any, test: Any, users: np.ndarray) -> dict[str, float]:
    """Most popular training items (distinct subjects), the subject's own excluded."""
    popularity = np.asarray((train > 0).sum(0)).ravel()
    n_items = train.shape[1]
    longest = int(np.diff(train.indptr)[users].max()) if len(users) else 0
    candidates = np.argsort(-popularity, kind="stable")[:20 + longest]
    candidates = candidates[popularity[candidates] > 0]
    recs = np.full((len(users), 20), -1, dtype=np.int64)
    if len(users) and len(candidates):
        seen = _stored(train, users, np.broadcast_to(candidates, (len(users), len(candidates))))
        first_unseen = np.argsort(seen, axis=1, kind="stable")[:, :20]  # candidates' order
        picked = candidates[first_unseen]
        picked[np.take_along_axis(seen, first_unseen, axis=1)] = -1  # fewer than 20 left
        recs[:, :picked.shape[1]] = picked
    return metrics_from_recs(recs, users, test, n_items)


# --- Search --------------------------------------------------------------------------------


def candidate_grid(cfg: ModelingSettings, allowed: frozenset[str]
                   ) -> list[tuple[type[Recommender], dict[str, Any]]]:
    """Every fitted algorithm's own parameters first (always tried, in registration
    order), then their variants in order of promise on real implicit-feedback data
    (Online Retail measurements, docs/modeling.md). Algorithms that embed items are fitted
    whether allowed or not: their factors back the bundle and the lineage export."""
    fitted = [r for r in recommenders() if r.embeds_items or r.name in allowed]
    bases = [(r, r.base_params(cfg)) for r in fitted]
    variants = sorted(((rank, n, r, params) for n, (r, base) in enumerate(bases)
                       for rank, params in r.variants(base)), key=lambda v: (v[0], v[1]))
    grid = bases + [(r, params) for _, _, r, params in variants]
    seen: set[str] = set()
    unique = []
    for algorithm, params in grid:
        key = f"{algorithm.name}:{sorted(params.items())}"
        if key not in seen:
            seen.add(key)
            unique.append((algorithm, params))
    return unique


def fit_candidates(
    train: Any, test: Any, users: np.ndarray, *, cfg: ModelingSettings, budget_s: float,
    evaluations: Executor, allowed: frozenset[str],
    on_iteration: Callable[[str, int, int], None] | None = None,
) -> list[Candidate]:
    """Fit candidates on the split; each one's evaluation goes to ``evaluations`` (a
    thread: the fits run one BLAS thread, so the next fit, or the final fit, uses one core
    while the other evaluates) and lands in its ``metrics`` through :func:`collect`. The
    first candidate of each algorithm always runs; others while their estimated cost (the
    last fit of the same algorithm) fits the budget."""
    started = time.perf_counter()
    done: list[Candidate] = []
    last_cost: dict[str, float] = {}
    skipped: set[str] = set()
    for algorithm, params in candidate_grid(cfg, allowed):
        name = algorithm.name
        if name in last_cost:
            spent = time.perf_counter() - started
            if spent + last_cost[name] > budget_s:
                continue
        candidate = Candidate(algorithm=name, params=dict(params))
        reason = algorithm.skip_reason(params, train)
        if reason:  # recorded on the version's search (once per algorithm), never fitted
            if name not in skipped:
                skipped.add(name)
                candidate.skipped = reason
                done.append(candidate)
            continue
        fit_started = time.perf_counter()
        model = algorithm(params)
        label = candidate.label
        model.fit(train, None if on_iteration is None
                  else (lambda i, total, label=label: on_iteration(label, i, total)))
        candidate.model = model
        candidate.fit_s = time.perf_counter() - fit_started
        candidate.evaluation = evaluations.submit(evaluate_model, model.frozen(),
                                                  train, test, users)
        last_cost[name] = candidate.fit_s
        done.append(candidate)
    return done


def collect(candidates: list[Candidate], log: Callable[[str], None] | None = None
            ) -> list[Candidate]:
    """Wait for the candidates' evaluations and fill in their metrics."""
    for candidate in candidates:
        if candidate.evaluation is not None:
            candidate.metrics = candidate.evaluation.result()
            candidate.evaluation = None
        if log and candidate.skipped:
            log(f"candidate {candidate.label}: skipped ({candidate.skipped})")
        elif log:
            log(f"candidate {candidate.label}: ndcg@10={candidate.ndcg:.4f} "
                f"fit={candidate.fit_s:.2f}s")
    return candidates


def embeds_items(candidate: Candidate) -> bool:
    return get_recommender(candidate.algorithm).embeds_items


def best_of(candidates: list[Candidate], *, embedding: bool = False,
            allowed: frozenset[str] | None = None) -> Candidate:
    """The best NDCG@10 among ``candidates`` (those that embed items, with ``embedding``;
    those of ``allowed`` algorithms, with ``allowed``). Skipped candidates never win; when
    every allowed one was skipped, the best fitted candidate serves."""
    fitted = [c for c in candidates if c.model is not None
              and (not embedding or embeds_items(c))]
    pool = [c for c in fitted if allowed is None or c.algorithm in allowed] or fitted
    return max(pool, key=lambda c: c.ndcg)  # first wins ties: the tenant's own parameters
