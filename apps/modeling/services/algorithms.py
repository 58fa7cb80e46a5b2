"""Fitting, evaluating and choosing models: pure functions of matrices (no database).

* Hold-out: for every subject, the newest ``fraction`` of their distinct items (by the last
  time they touched each) is held out (``floor(n * fraction)``: subjects with fewer than
  ``1 / fraction`` items stay entirely in training). The hold-out reports quality and
  decides champion/challenger; it never chooses parameters.
* Validation: the same cut applied again to the training part (:func:`split_data`); the
  search scores its candidates there only.
* Metrics on the held-out items, seen items excluded: precision@10, recall@20, NDCG@10,
  MAP@10 and catalog coverage@10, for the model and for a popularity baseline.
* Candidates: every registered algorithm (``apps.modeling.recommenders``) the tenant allows,
  and those that embed items whether allowed or not; each brings its own
  ``search_space`` (the tenant's parameters first), crossed with recency weighting for
  those that read weights, tried round-robin while the search budget lasts; the best
  validation NDCG@10 wins. Every algorithm is used only through the ``Recommender``
  interface.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from apps.modeling.recommenders import Recommender, get_recommender, recommenders

if TYPE_CHECKING:
    from apps.modeling.config import ModelingSettings


#: Recency weighting candidates (half-life in days; ``None`` = off), tried for algorithms
#: that read weights. An interaction's weight is multiplied by ``0.5 ** (age / half-life)``,
#: its age counted from the subject's own newest interaction (so it depends on nobody
#: else's data: erasure and the unlearning oracle are unaffected), floored at
#: ``RECENCY_FLOOR`` so that no stored cell becomes zero.
RECENCY_HALF_LIVES: tuple[float | None, ...] = (None, 90.0, 30.0, 365.0)
RECENCY_FLOOR = 0.01


@dataclass
class Candidate:
    algorithm: str
    params: dict[str, Any]
    recency: float | None = None  # half-life in days of the recency weighting, or off
    model: Recommender | None = None
    #: Validation metrics (what the search chooses by); empty when nothing was chosen.
    metrics: dict[str, float] = field(default_factory=dict)
    #: Hold-out metrics, for the chosen candidates only (:func:`score_holdout`).
    holdout: dict[str, float] = field(default_factory=dict)
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
        recency = f", recency={self.recency:g}d" if self.recency else ""
        return f"{self.algorithm}({inner}{recency})"

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "algorithm": self.algorithm, "params": self.params,
            "recency_half_life_days": self.recency, "ndcg@10": round(self.ndcg, 6),
            "validation": {k: round(float(v), 6) for k, v in self.metrics.items()},
            "fit_s": round(self.fit_s, 3)}
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


def _holdout_mask(matrix: Any, last_seen: np.ndarray, fraction: float,
                  rank: np.ndarray | None = None) -> np.ndarray:
    """Per stored entry (CSR order): is it in its subject's newest ``fraction``?"""
    rank = recency_rank(matrix, last_seen) if rank is None else rank
    sizes = np.diff(matrix.indptr)
    return rank < np.floor(np.repeat(sizes, sizes) * fraction).astype(np.int64)


def _part(matrix: Any, mask: np.ndarray) -> Any:
    """The entries of ``mask`` (CSR order) as a CSR matrix of the same shape. Masking
    CSR-ordered entries keeps them CSR-ordered: no conversion needed."""
    import scipy.sparse as sp

    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[mask], minlength=matrix.shape[0]), out=indptr[1:])
    return sp.csr_matrix((matrix.data[mask].astype(np.float32), matrix.indices[mask],
                          indptr), shape=matrix.shape)


def holdout_split(matrix: Any, last_seen: np.ndarray, fraction: float,
                  rank: np.ndarray | None = None) -> tuple[Any, Any]:
    """``(train, test)`` CSR matrices of the same shape (see the module docstring)."""
    matrix = matrix.tocsr()
    is_test = _holdout_mask(matrix, last_seen, fraction, rank)
    return _part(matrix, ~is_test), _part(matrix, is_test)


@dataclass
class Split:
    """``fit`` + ``validation`` = ``train``; ``train`` + ``test`` = the full matrix. The
    search fits on ``fit`` and scores on ``validation``; the chosen candidates are scored
    on ``test`` (the hold-out) after a fit on ``train``, then served after one on all of
    it. ``*_seen``: the last-seen times aligned with each matrix's stored entries."""

    full: Any
    full_seen: np.ndarray
    train: Any
    train_seen: np.ndarray
    test: Any
    fit: Any = None               # None without ``validation`` (nothing to choose)
    fit_seen: np.ndarray | None = None
    validation: Any = None


def split_data(matrix: Any, last_seen: np.ndarray, fraction: float,
               rank: np.ndarray | None = None, *, validation: bool = True) -> Split:
    """The hold-out split, then (with ``validation``) the validation split carved from its
    training part the same way (each subject's newest ``fraction`` of what remains). The
    validation entries are training entries: they never overlap the hold-out."""
    matrix = matrix.tocsr()
    last_seen = np.asarray(last_seen, dtype=np.float64)
    is_test = _holdout_mask(matrix, last_seen, fraction, rank)
    train, train_seen = _part(matrix, ~is_test), last_seen[~is_test]
    split = Split(full=matrix, full_seen=last_seen, train=train, train_seen=train_seen,
                  test=_part(matrix, is_test))
    if validation:
        is_validation = _holdout_mask(train, train_seen, fraction)
        split.fit, split.fit_seen = _part(train, ~is_validation), train_seen[~is_validation]
        split.validation = _part(train, is_validation)
    return split


def recency_weighted(matrix: Any, last_seen: np.ndarray, half_life_days: float | None) -> Any:
    """``matrix`` with each weight decayed by its age (see ``RECENCY_HALF_LIVES``); the
    matrix itself when ``half_life_days`` is ``None``."""
    if not half_life_days or matrix.nnz == 0:
        return matrix
    matrix = matrix.tocsr()
    sizes = np.diff(matrix.indptr)
    filled = np.flatnonzero(sizes)
    newest = np.zeros(matrix.shape[0], dtype=np.float64)
    newest[filled] = np.maximum.reduceat(last_seen, matrix.indptr[filled])
    age_days = (np.repeat(newest, sizes) - last_seen) / 86400.0
    decay = np.maximum(np.exp2(-age_days / float(half_life_days)), RECENCY_FLOOR)
    out = matrix.copy()
    out.data = (matrix.data * decay).astype(np.float32)
    return out


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


def evaluate_rows(model: Recommender, model_item_ids: np.ndarray, train: Any, test: Any,
                  users: np.ndarray, item_ids: np.ndarray) -> dict[str, float]:
    """Ranking metrics of ``model`` (columns ``model_item_ids``, maybe another version's)
    on the hold-out ``test`` (columns ``item_ids``), each user scored from their ``train``
    row as an anonymous history (:meth:`Recommender.score_rows`), so a model that never saw
    these rows is scored exactly like one that did. Items the model does not know cannot
    be recommended (each held-out one is a miss); the user's training items are excluded;
    with ``positive_scores_only`` only positive scores count."""
    import scipy.sparse as sp

    n_items = train.shape[1]
    model_item_ids = np.asarray(model_item_ids)
    position = np.minimum(np.searchsorted(model_item_ids, item_ids), len(model_item_ids) - 1)
    known = (model_item_ids[position] == item_ids) if len(model_item_ids) else \
        np.zeros(n_items, dtype=bool)
    ours, theirs = np.flatnonzero(known), position[known]
    n = min(20, n_items)
    recs = np.full((len(users), 20), -1, dtype=np.int64)
    for start in range(0, len(users), 512):
        block = train[users[start:start + 512]].tocsr()
        rows = block.tocoo()
        keep = known[rows.col]
        mapped = sp.csr_matrix(
            (rows.data[keep].astype(np.float32), (rows.row[keep], position[rows.col[keep]])),
            shape=(block.shape[0], len(model_item_ids)))
        scores = np.full((block.shape[0], n_items), -np.inf, dtype=np.float32)
        if len(ours):
            scores[:, ours] = model.score_rows(mapped)[:, theirs]
        if model.positive_scores_only:
            scores[scores <= 0] = -np.inf
        scores[rows.row, rows.col] = -np.inf  # the user's own training items
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        top[~np.isfinite(np.take_along_axis(scores, top, axis=1))] = -1
        recs[start:start + len(top), :n] = top
    return metrics_from_recs(recs, users, test, n_items)


def restrict_test(test: Any, user_keys: list[str], item_ids: np.ndarray, seen_keys: np.ndarray,
                  seen: Any, seen_item_ids: np.ndarray) -> Any:
    """``test`` without the (subject, item) pairs the matrix ``seen`` (rows ``seen_keys``,
    sorted bytes; columns ``seen_item_ids``) holds: the hold-out a champion trained on
    ``seen`` cannot have learnt."""
    test = test.tocsr()
    coo = test.tocoo()
    keys = np.array([k.encode() for k in user_keys], dtype=seen_keys.dtype) \
        if len(user_keys) else np.zeros(0, dtype=seen_keys.dtype)
    row_pos = np.minimum(np.searchsorted(seen_keys, keys), max(len(seen_keys) - 1, 0))
    row_known = (seen_keys[row_pos] == keys) if len(seen_keys) else np.zeros(len(keys), bool)
    col_pos = np.minimum(np.searchsorted(seen_item_ids, item_ids),
                         max(len(seen_item_ids) - 1, 0))
    col_known = (seen_item_ids[col_pos] == item_ids) if len(seen_item_ids) else \
        np.zeros(len(item_ids), bool)
    candidate = row_known[coo.row] & col_known[coo.col]
    # Each pair as one int64 code in the seen matrix's numbering; one sort, one search.
    seen = seen.tocsr()
    width = max(seen.shape[1], 1)
    seen_rows = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(seen.indptr))
    seen_codes = np.sort(seen_rows * width + seen.indices)
    asked = row_pos[coo.row].astype(np.int64) * width + col_pos[coo.col]
    found = np.minimum(np.searchsorted(seen_codes, asked), max(len(seen_codes) - 1, 0))
    was_seen = candidate & (seen_codes[found] == asked) if len(seen_codes) else \
        np.zeros(coo.nnz, dtype=bool)
    return _part(test, ~was_seen)


# --- Search --------------------------------------------------------------------------------


def candidate_grid(cfg: ModelingSettings, allowed: frozenset[str], *, search: bool = True
                   ) -> list[tuple[type[Recommender], dict[str, Any], float | None]]:
    """``(algorithm, params, recency half-life)`` in the order the search tries them:
    round-robin over the fitted algorithms (registration order) through each one's own
    ``search_space`` crossed with ``RECENCY_HALF_LIVES`` (for those that read weights: each
    parameter set without recency first, the recency variants of the tenant's own
    parameters after it). Without ``search``, only each algorithm's own parameters.
    Algorithms that embed items are fitted whether allowed or not: their factors back the
    bundle and the lineage export."""
    fitted = [r for r in recommenders() if r.embeds_items or r.name in allowed]
    queues: list[list[tuple[type[Recommender], dict[str, Any], float | None]]] = []
    for algorithm in fitted:
        space = algorithm.search_space(cfg) if search else [algorithm.base_params(cfg)]
        own: list[tuple[type[Recommender], dict[str, Any], float | None]] = [
            (algorithm, space[0], None)]
        recency = [h for h in RECENCY_HALF_LIVES if h] if search and algorithm.uses_weights \
            else []
        for params, half_life in itertools.zip_longest(space[1:], recency):
            if params is not None:
                own.append((algorithm, params, None))
            if half_life is not None:
                own.append((algorithm, space[0], half_life))
        queues.append(own)
    grid = [entry for row in itertools.zip_longest(*queues) for entry in row if entry]
    seen: set[str] = set()
    unique = []
    for algorithm, params, half_life in grid:
        key = f"{algorithm.name}:{sorted(params.items())}:{half_life}"
        if key not in seen:
            seen.add(key)
            unique.append((algorithm, params, half_life))
    return unique


def fit_candidates(
    grid: list[tuple[type[Recommender], dict[str, Any], float | None]], matrix: Any,
    last_seen: np.ndarray, test: Any, users: np.ndarray, *, budget_s: float,
    evaluations: Executor, on_iteration: Callable[[str, int, int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Candidate]:
    """Fit the ``grid``'s candidates on ``matrix`` (the validation fit, or the training
    part when nothing is to be chosen); each one's evaluation on ``test`` goes to
    ``evaluations`` (a thread: the fits run one BLAS thread, so the next fit uses one core
    while the other evaluates) and lands in its ``metrics`` through :func:`collect`. The
    first candidate of each algorithm always runs; others while the time spent (``clock``)
    plus their estimated cost (the last fit of the same algorithm) stays in the budget."""
    started = clock()
    done: list[Candidate] = []
    last_cost: dict[str, float] = {}
    skipped: set[str] = set()
    weighted: dict[float | None, Any] = {None: matrix}
    for algorithm, params, half_life in grid:
        name = algorithm.name
        if name in last_cost and clock() - started + last_cost[name] > budget_s:
            continue
        candidate = Candidate(algorithm=name, params=dict(params), recency=half_life)
        reason = algorithm.skip_reason(params, matrix)
        if reason:  # recorded on the version's search (once per algorithm), never fitted
            if name not in skipped:
                skipped.add(name)
                candidate.skipped = reason
                done.append(candidate)
            continue
        if half_life not in weighted:
            weighted[half_life] = recency_weighted(matrix, last_seen, half_life)
        fit_started = clock()
        model = algorithm(params)
        label = candidate.label
        model.fit(weighted[half_life], None if on_iteration is None
                  else (lambda i, total, label=label: on_iteration(label, i, total)))
        candidate.model = model
        candidate.fit_s = clock() - fit_started
        candidate.evaluation = evaluations.submit(evaluate_model, model.frozen(),
                                                  matrix, test, users)
        last_cost[name] = candidate.fit_s
        done.append(candidate)
    return done


def collect(candidates: list[Candidate], log: Callable[[str], None] | None = None,
            what: str = "validation") -> list[Candidate]:
    """Wait for the candidates' evaluations and fill in their metrics."""
    for candidate in candidates:
        if candidate.evaluation is not None:
            candidate.metrics = candidate.evaluation.result()
            candidate.evaluation = None
        if log and candidate.skipped:
            log(f"candidate {candidate.label}: skipped ({candidate.skipped})")
        elif log:
            log(f"candidate {candidate.label}: {what} ndcg@10={candidate.ndcg:.4f} "
                f"fit={candidate.fit_s:.2f}s")
    return candidates


def embeds_items(candidate: Candidate) -> bool:
    return get_recommender(candidate.algorithm).embeds_items


def best_of(candidates: list[Candidate], *, embedding: bool = False,
            allowed: frozenset[str] | None = None,
            recency: tuple[float | None] | None = None) -> Candidate:
    """The best validation NDCG@10 among ``candidates`` (those that embed items, with
    ``embedding``; those of ``allowed`` algorithms, with ``allowed``; preferably those with
    the ``recency`` given as a 1-tuple). Skipped candidates never win; when every allowed
    one was skipped, the best fitted candidate serves."""
    fitted = [c for c in candidates if c.model is not None
              and (not embedding or embeds_items(c))]
    pool = [c for c in fitted if allowed is None or c.algorithm in allowed] or fitted
    if recency is not None:
        pool = [c for c in pool if c.recency == recency[0]] or pool
    return max(pool, key=lambda c: c.ndcg)  # first wins ties: the tenant's own parameters
