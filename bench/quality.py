"""Recommendation quality on UCI Online Retail: the platform against tuned baselines.

    .venv/bin/python bench/quality.py
        [--retail ../shared/data/uci-online-retail/online_retail.csv.gz]
        [--db discreet_bench_quality] [--pg postgres://postgres@127.0.0.1:5432] [--reuse]
        [--skip-platform] [--only ease,bm25,als,platform] [--platform-algorithms als,bm25]
        [--search-seconds 60]

The protocol (issue 15):

* each customer's purchase lines (CustomerID present, Quantity > 0, no cancellations,
  product codes only) in time order; the first 80 % (``ceil(0.8 n)`` lines) are training, the
  last 20 % held out;
* only held-out items the customer had not bought in their training part count (items never
  seen in training at all still count: nothing can recommend them, they only lower recall);
* every model recommends 10 items among those of the training part, the customer's own
  training items excluded; NDCG@10 (binary relevance, ideal over ``min(|held out|, 10)``),
  Recall@10 (hits / |held out|), catalog coverage (distinct recommended items / items) and
  the seconds of the final fit.

In one run it prints:

1. **the platform through its own training path**: the training part is loaded into a fresh
   PostgreSQL database through the services (catalog ``upsert_items``, ``record_consents``
   per customer, events through ``ingest_events`` in batches of 1,000: the ingestion service
   directly, not HTTP, which would only add time), then ``train_model`` with the default
   settings (every registered algorithm, the 60 s search), and every evaluated customer's
   ``recommend_for_subject(n=10)`` (consent check included);
2. **bare ALS** (implicit, the platform's default parameters: 64 factors, λ 0.01, alpha 1,
   15 iterations, the platform's purchase weight 8 per line);
3. **tuned ALS**, **BM25** item-kNN and **EASE** (``apps.modeling.recommenders.ease``), each
   with its parameters chosen on a validation split made the same way inside the training
   part (the first 80 % of each customer's training lines against the rest), then refitted
   on the whole training part.

Nothing is asserted; figures go to bench/README.md ("Quality: issue 15").
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
import warnings
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # bench/common.py: scripts run as `python bench/<name>.py`
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import train as train_bench  # noqa: E402 - bench/train.py: the retail reader and loader

PURCHASE_WEIGHT = 8.0  # the platform's default weight of a purchase (apps/events/apps.py)


# --- Protocol --------------------------------------------------------------------------------


class Split:
    """Customers x items matrices of one split: ``train`` (line counts), ``held_out`` (per
    evaluated customer, the new items they bought afterwards, as item codes)."""

    def __init__(self, lines: dict[str, list[tuple[datetime, int, str]]], fraction: float
                 ) -> None:
        import scipy.sparse as sp

        self.train_lines: dict[str, list[tuple[datetime, int, str]]] = {}
        held: dict[str, set[str]] = {}
        for customer, rows in lines.items():
            ordered = sorted(rows)
            cut = math.ceil(fraction * len(ordered))
            first, last = ordered[:cut], ordered[cut:]
            self.train_lines[customer] = first
            seen = {code for _, _, code in first}
            new = {code for _, _, code in last} - seen
            if first and new:
                held[customer] = new
        self.customers = sorted(self.train_lines)
        self.items = sorted({code for rows in self.train_lines.values() for _, _, code in rows})
        self.item_index = {code: n for n, code in enumerate(self.items)}
        self.row_of = {c: n for n, c in enumerate(self.customers)}
        counts: dict[tuple[int, int], float] = defaultdict(float)
        for customer, rows in self.train_lines.items():
            for _, _, code in rows:
                counts[self.row_of[customer], self.item_index[code]] += 1.0
        keys = np.array(list(counts), dtype=np.int64).reshape(-1, 2)
        self.train = sp.csr_matrix(
            (np.array(list(counts.values()), dtype=np.float32), (keys[:, 0], keys[:, 1])),
            shape=(len(self.customers), len(self.items)))
        self.train.sort_indices()
        self.evaluated = sorted(held)
        self.users = np.array([self.row_of[c] for c in self.evaluated], dtype=np.int64)
        self.held_out = [held[c] for c in self.evaluated]

    def metrics(self, recs: np.ndarray) -> dict[str, float]:
        """``recs``: one row of 10 item columns (-1 = none) per evaluated customer."""
        discount = 1.0 / np.log2(np.arange(2, 12))
        ndcg, recall = [], []
        for row, new in zip(recs, self.held_out, strict=True):
            hits = np.array([c >= 0 and self.items[c] in new for c in row[:10]], dtype=float)
            ideal = discount[:min(len(new), 10)].sum()
            ndcg.append(float((hits * discount[:len(hits)]).sum() / ideal))
            recall.append(hits.sum() / len(new))
        shown = np.unique(recs[recs >= 0])
        return {"ndcg@10": float(np.mean(ndcg)), "recall@10": float(np.mean(recall)),
                "coverage@10": len(shown) / len(self.items), "customers": len(self.evaluated)}


def customer_lines(rows: list) -> dict[str, list[tuple[datetime, int, str]]]:
    lines: dict[str, list[tuple[datetime, int, str]]] = defaultdict(list)
    for n, (customer, code, when, _) in enumerate(rows):
        lines[customer].append((when, n, code))  # n: file order breaks ties in time
    return lines


# --- Models on matrices ----------------------------------------------------------------------


def _weighted(matrix: Any, weighting: str) -> Any:
    from implicit.nearest_neighbours import bm25_weight, tfidf_weight

    if weighting == "bm25":
        return bm25_weight(matrix, K1=100, B=0.8).tocsr().astype(np.float32)
    if weighting == "tfidf":
        return tfidf_weight(matrix).tocsr().astype(np.float32)
    if weighting == "log":
        out = matrix.copy()
        out.data = np.log1p(out.data)
        return out
    return matrix  # "count"


def recommend(kind: str, params: dict[str, Any], split: Split) -> tuple[np.ndarray, float]:
    """Fit ``kind`` with ``params`` on ``split.train``; top 10 per evaluated customer and
    the fit's seconds."""
    train = split.train
    users = split.users
    started = time.perf_counter()
    if kind == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(
            factors=params["factors"], regularization=params["regularization"],
            alpha=params["alpha"], iterations=params["iterations"], random_state=42,
            num_threads=1, dtype=np.float32, calculate_training_loss=False)
        model.fit(_weighted(train * params.get("scale", 1.0), params["weighting"]),
                  show_progress=False)
        fit_s = time.perf_counter() - started
        ids, _ = model.recommend(users, train[users], N=10, filter_already_liked_items=True)
    elif kind == "bm25":
        from implicit.nearest_neighbours import BM25Recommender

        model = BM25Recommender(K=params["K"], K1=params.get("K1", 1.2),
                                B=params.get("B", 0.75), num_threads=1)
        with warnings.catch_warnings():  # implicit's bm25_weight hands its kNN a COO
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(train, show_progress=False)
        fit_s = time.perf_counter() - started
        ids, _ = model.recommend(users, train[users], N=10, filter_already_liked_items=True)
    elif kind == "ease":
        from apps.modeling.recommenders.ease import EaseRecommender

        model = EaseRecommender({"lambda": params["lambda"], "max_items": 10**6})
        model.fit(train)
        fit_s = time.perf_counter() - started
        ids = model.top_items(users, train[users], 10)
    else:
        raise ValueError(kind)
    return np.asarray(ids, dtype=np.int64), fit_s


GRIDS: dict[str, list[dict[str, Any]]] = {
    "ease": [{"lambda": lam} for lam in (50, 100, 200, 300, 500, 800, 1500)],
    "bm25": [{"K": k} for k in (100, 400, 1000, 3000)],
    "als": [{"factors": 256, "regularization": reg, "alpha": alpha, "iterations": 15,
             "weighting": w}
            for w, reg, alpha in itertools.product(("tfidf", "bm25"), (10.0, 50.0),
                                                   (1.0, 5.0, 20.0))],
}
BARE_ALS = {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15,
            "weighting": "count", "scale": PURCHASE_WEIGHT}


def tune(kind: str, validation: Split) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    tried = []
    for params in GRIDS[kind]:
        recs, fit_s = recommend(kind, params, validation)
        m = validation.metrics(recs)
        tried.append({"params": params, **m, "fit_s": fit_s})
        print(f"  validation {kind} {params}: ndcg@10 {m['ndcg@10']:.4f} "
              f"recall@10 {m['recall@10']:.4f} ({fit_s:.1f}s)", flush=True)
    best = max(tried, key=lambda t: t["ndcg@10"])
    return best["params"], tried


# --- The platform ------------------------------------------------------------------------------


def platform(args: argparse.Namespace, rows: list, titles: dict, split: Split
             ) -> dict[str, Any]:
    """Load the training part through the services, train the default way, ask the
    serving service for every evaluated customer."""
    from apps.modeling.config import modeling_settings
    from apps.modeling.services import recommend_for_subject, train_model
    from apps.tenants.models import Tenant
    from apps.tenants.services import create_tenant, pseudonymize

    train_rows = [rows[n] for n in sorted(training_line_numbers(split))]
    settings = {"event_history_cap": 100_000, "event_retention_days": 36500,
                "model_search_seconds": args.search_seconds,
                "model_algorithms": args.platform_algorithms.split(",")
                if args.platform_algorithms else None,
                "model_activation_tolerance": 1.0,  # the new version serves (--reuse)
                "model_retrain_debounce_seconds": 10**6}
    for setting in args.setting:
        key, _, value = setting.partition("=")
        settings[key] = json.loads(value)
    tenant = Tenant.objects.filter(slug="bench-quality").first() if args.reuse else None
    out: dict[str, Any] = {}
    if tenant is None:
        tenant = create_tenant(slug="bench-quality", name="Bench quality")
        tenant.settings = settings
        tenant.save(update_fields=["settings"])
        train_bench.keep_all_events(tenant)
        out["load"] = train_bench.load(tenant, train_rows, titles, "purchase")
        print(f"loaded through the services: {out['load']}", flush=True)
    else:
        tenant.settings = settings
        tenant.save(update_fields=["settings"])
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"platform settings: {modeling_settings(tenant).as_dict()}", flush=True)
    started = time.perf_counter()
    version = train_model(tenant=tenant, echo=lambda line: print(" ", line, flush=True))
    out["train_s"] = time.perf_counter() - started
    out["chosen"] = {"algorithm": version.algorithm, "params": version.params["chosen"],
                     "internal_metrics": version.metrics["model"]}
    out["search"] = version.search
    out["fit_s"] = sum(c["fit_s"] for c in version.search)
    recs = np.full((len(split.evaluated), 10), -1, dtype=np.int64)
    fallbacks: dict[str, int] = {}
    started = time.perf_counter()
    for n, customer in enumerate(split.evaluated):
        answer = recommend_for_subject(tenant=tenant, subject_key=pseudonymize(tenant, customer),
                                       n=10)
        if not answer.personalized:  # e.g. quarantined (issue 15): the fallback counts
            fallbacks[answer.reason] = fallbacks.get(answer.reason, 0) + 1
        cols = [split.item_index.get(i["item"], -1) for i in answer.items]
        recs[n, :len(cols)] = cols
    out["serving_s"] = time.perf_counter() - started
    out["not_personalized"] = fallbacks
    out["decision"] = version.activation_decision
    if fallbacks:
        print(f"answered without personalization (their fallback counted): {fallbacks}")
    out["metrics"] = split.metrics(recs)
    return out


def training_line_numbers(split: Split) -> set[int]:
    """File positions of every training line."""
    return {n for rows in split.train_lines.values() for _, n, _ in rows}


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--retail", default=str(train_bench.RETAIL))
    parser.add_argument("--db", default="discreet_bench_quality")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--search-seconds", type=float, default=60.0)
    parser.add_argument("--reuse", action="store_true", help="reuse --db: skip loading")
    parser.add_argument("--skip-platform", action="store_true",
                        help="baselines only (no database)")
    parser.add_argument("--only", default="",
                        help="comma-separated: ease,bm25,als,platform (default: all)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=JSON",
                        help="another tenant setting for the platform, e.g. "
                             "model_quarantine_multiplier=500 (repeatable)")
    parser.add_argument("--platform-algorithms", default="",
                        help="the tenant's model_algorithms, e.g. als,bm25 (default: all)")
    args = parser.parse_args()
    if args.skip_platform:
        env = common.bench_env(args, DJANGO_SETTINGS_MODULE="platform_site.settings.test")
        env["DATABASE_URL"] = "sqlite://:memory:"
        common.setup_django(env)
    else:
        train_bench._setup_django(args, fresh=not args.reuse)
    from apps.modeling.blas import pin_blas_threads

    pin_blas_threads()
    started = time.perf_counter()
    rows, titles = train_bench.retail_rows(Path(args.retail))
    lines = customer_lines(rows)
    test = Split(lines, 0.8)
    validation = Split(test.train_lines, 0.8)
    print(f"read {len(rows)} lines, {len(lines)} customers in "
          f"{time.perf_counter() - started:.1f}s; training part {test.train.shape} "
          f"{test.train.nnz} pairs, {len(test.evaluated)} customers evaluated; validation "
          f"{len(validation.evaluated)} customers", flush=True)
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(),
                               "customers_evaluated": len(test.evaluated),
                               "items": len(test.items)}
    kinds = [k for k in ("ease", "bm25", "als") if not args.only or k in args.only.split(",")]
    report: dict[str, dict[str, Any]] = {}
    if "als" in kinds:
        recs, fit_s = recommend("als", BARE_ALS, test)
        report["bare ALS (64 f, λ 0.01, alpha 1, weight 8/line)"] = {
            **test.metrics(recs), "fit_s": fit_s, "params": BARE_ALS}
    for kind in kinds:
        print(f"tuning {kind} on validation", flush=True)
        best, tried = tune(kind, validation)
        recs, fit_s = recommend(kind, best, test)
        report[f"tuned {kind}"] = {**test.metrics(recs), "fit_s": fit_s, "params": best,
                                   "validation": tried}
    if not args.skip_platform and (not args.only or "platform" in args.only.split(",")):
        out = platform(args, rows, titles, test)
        results["platform"] = out
        report[f"platform ({out['chosen']['algorithm']} chosen)"] = {
            **out["metrics"], "fit_s": out["fit_s"], "params": out["chosen"]["params"],
            "train_model_s": out["train_s"]}
    results["report"] = report
    print(f"\n{'':46s} {'NDCG@10':>8s} {'Recall@10':>9s} {'coverage':>8s} {'fit s':>7s}")
    for label, m in report.items():
        print(f"{label:46s} {m['ndcg@10']:8.4f} {m['recall@10']:9.4f} "
              f"{m['coverage@10']:8.3f} {m['fit_s']:7.2f}  {m['params']}")
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"quality-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
