"""Training and serving benchmark: the platform vs bare ``implicit`` on the same data.

    .venv/bin/python bench/train.py [--dataset retail|goodbooks|both] [--users 53424]
        [--retail ../shared/data/uci-online-retail/online_retail.csv.gz]
        [--search-seconds 60] [--db discreet_bench_train] [--pg postgres://postgres@127.0.0.1:5432]

For each dataset, in one run:

1. creates a fresh PostgreSQL database and loads the data **through the services**: a
   tenant, the catalog (``upsert_items``), consent per subject (``record_consents``) and
   events (``ingest_events``, batches of 1,000). The tenant keeps every event (history cap
   and retention raised; times shifted so the newest event is an hour old).
   * ``retail``: the real UCI Online Retail purchases (CustomerID present, Quantity > 0, no
     cancellations, product codes only): one ``purchase`` event per invoice line.
   * ``goodbooks``: the goodbooks-10k-shaped synthetic ratings of
     ``../shared/data/goodbooks-10k/synthesize.py`` (numpy port in bench/ingest.py, same
     algorithm and seed) for ``--users`` users, as ``rating`` events (weight = stars).
2. times the platform's snapshot and CSR build (``snapshot_training_data``);
3. fits bare ``implicit`` ALS on that same matrix with the same parameters (one thread,
   same seed) and compares it with the platform's end-to-end ``train_model`` (ALS only, no
   search: snapshot, consent, split, fit, evaluation, fold-in, artifact, DP release,
   registration) -> the ratio (target <= 1.25);
4. trains the platform's default way (ALS and BM25 with the time-boxed search) and
   compares its chosen model with bare implicit ALS and BM25 fitted on the same split,
   and with the popularity baseline (NDCG@10 etc.; hold-out = newest 20% per subject);
5. measures in-process serving latency (p50/p99 of the service calls, consent check and
   active-version check included) for user, session and similar-items requests.

``--read-rounds N`` times the PostgreSQL snapshot reader alone N times after step 2 (one
reader inside a transaction: this process's and the server backend's CPU per million events,
the latter from ``/proc`` when PostgreSQL runs on this machine); ``--read-only`` stops there.

Nothing is asserted: figures go to bench/README.md ("Training and serving").
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common  # bench/common.py: scripts run as `python bench/<name>.py`
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
RETAIL = SHARED / "uci-online-retail" / "online_retail.csv.gz"


def _setup_django(args: argparse.Namespace, *, fresh: bool) -> None:
    """Django in this process, on test settings (training runs in-process), against a
    fresh ``--db`` or, when reusing one, the same database migrated to today's schema."""
    env = common.bench_env(args, DJANGO_SETTINGS_MODULE="platform_site.settings.test")
    if fresh:
        common.recreate_database(args, env)
    else:
        common.migrate(env)
    common.setup_django(env)


# --- Data ------------------------------------------------------------------------------------


def retail_rows(path: Path) -> tuple[list[tuple[str, str, datetime, float | None]], dict]:
    """``(customer, stock code, time, None)`` purchase lines and ``{code: description}``."""
    rows, titles = [], {}
    with gzip.open(path, "rt", newline="") as handle:
        for r in csv.DictReader(handle):
            code = r["StockCode"]
            if (not r["CustomerID"] or r["InvoiceNo"].startswith("C")
                    or int(r["Quantity"]) <= 0 or not code[:5].isdigit()):
                continue
            when = datetime.strptime(r["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            rows.append((f"customer-{r['CustomerID']}", code, when, None))
            titles.setdefault(code, (r["Description"] or code)[:200])
    return rows, titles


def goodbooks_rows(users: int) -> tuple[list[tuple[str, str, datetime, float | None]], dict]:
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    user_ids, book_ids, ratings = module.synthesize(users)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [(f"reader-{u}", f"book-{b}", start + timedelta(seconds=n), float(r))
            for n, (u, b, r) in enumerate(zip(user_ids.tolist(), book_ids.tolist(),
                                              ratings.tolist(), strict=True))]
    titles = {f"book-{b}": f"Book {b}" for b in np.unique(book_ids).tolist()}
    return rows, titles


def load_catalog(tenant: Any, titles: dict) -> None:
    from apps.events.services import upsert_items

    codes = list(titles)
    for i in range(0, len(codes), 1000):
        upsert_items(tenant=tenant, items=[{"item": c, "title": titles[c]}
                                           for c in codes[i:i + 1000]])


def load(tenant: Any, rows: list, titles: dict, event_type: str) -> dict[str, float]:
    from apps.consent.services import record_consents
    from apps.events.services import ingest_events
    from apps.tenants.services import pseudonymize

    timings = {}
    started = time.perf_counter()
    load_catalog(tenant, titles)
    timings["items_s"] = time.perf_counter() - started

    started = time.perf_counter()
    subjects = sorted({r[0] for r in rows})
    for subject in subjects:
        record_consents(tenant=tenant, subject_key=pseudonymize(tenant, subject),
                        decisions={"personalization": True}, level="full")
    timings["consent_s"] = time.perf_counter() - started

    shift = datetime.now(UTC) - timedelta(hours=1) - max(r[2] for r in rows)
    started = time.perf_counter()
    accepted = maintained = 0
    for i in range(0, len(rows), 1000):
        batch = [{"event_id": uuid.uuid4().hex, "subject": s, "item": item, "type": event_type,
                  "occurred_at": (when + shift).isoformat(),
                  **({"value": value} if value is not None else {})}
                 for s, item, when, value in rows[i:i + 1000]]
        accepted += ingest_events(tenant=tenant, events=batch).accepted
        if accepted - maintained >= max(50_000, maintained // 5):
            autovacuum_as_configured_by_default()
            maintained = accepted
    timings["events_s"] = time.perf_counter() - started
    timings["events_accepted"] = accepted
    timings["subjects"] = len(subjects)
    return timings


def bulk_load(tenant: Any, rows: list, titles: dict, event_type: str) -> dict[str, float]:
    """``--bulk-load``: the same tenant, catalog, consent and events as :func:`load`, written
    by SQL instead of one service call per subject and per 1,000 events (the 6M goodbooks set
    takes ~40 min through the services on a quiet box, hours on a shared one; the training
    benchmark starts from the database either way). The catalog goes through
    ``upsert_items``; one subject's consent through ``record_consents``, whose rows (state,
    records, subject state) are then copied for every other subject with only the key
    changed; events by ``COPY`` with the columns ``ingest_events`` writes. Resumable: only
    subjects without consent and an empty events table are filled in."""
    from django.db import connection
    from django.utils import timezone

    from apps.consent.services import record_consents
    from apps.events.models import Item
    from apps.tenants.services import pseudonymize, pseudonymize_many

    timings: dict[str, float] = {}
    started = time.perf_counter()
    load_catalog(tenant, titles)
    timings["items_s"] = time.perf_counter() - started

    started = time.perf_counter()
    subjects = sorted({r[0] for r in rows})
    keys = pseudonymize_many(tenant, subjects)
    template = pseudonymize(tenant, subjects[0])
    columns = {
        "consent_subjectstate": "created_at, updated_at, level, restricted, objected, "
                                "objected_at, do_not_ask_until, tenant_id",
        "consent_consentstate": "created_at, updated_at, granted, source, method, "
                                "captured_at, tenant_id, notice_id, purpose_id",
        "consent_consentrecord": "created_at, updated_at, kind, granted, level, source, "
                                 "method, captured_at, tenant_id, notice_id, purpose_id",
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT subject_key FROM consent_subjectstate WHERE tenant_id = %s",
                       [tenant.pk])
        done = {k for (k,) in cursor.fetchall()}
        if template not in done:
            record_consents(tenant=tenant, subject_key=template,
                            decisions={"personalization": True}, level="full")
            done.add(template)
        missing = [keys[s] for s in subjects if keys[s] not in done]
        for table, cols in columns.items():  # the template's rows, once per missing key
            cursor.execute(
                f"INSERT INTO {table} (subject_key, {cols}) "  # noqa: S608 (constant names)
                f"SELECT k.key, {cols} FROM {table} "
                "CROSS JOIN unnest(%s::text[]) AS k(key) "
                "WHERE tenant_id = %s AND subject_key = %s",
                [missing, tenant.pk, template])
    timings["consent_s"] = time.perf_counter() - started

    started = time.perf_counter()
    pks = dict(Item.objects.for_tenant(tenant).values_list("external_id", "pk"))
    shift = datetime.now(UTC) - timedelta(hours=1) - max(r[2] for r in rows)
    now = timezone.now()
    accepted = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM events_event WHERE tenant_id = %s)",
                       [tenant.pk])
        if not cursor.fetchone()[0]:
            with cursor.cursor.copy(
                    "COPY events_event (created_at, updated_at, event_id, subject_key, type, "
                    "value, occurred_at, properties, tenant_id, item_id) FROM STDIN") as copy:
                for s, item, when, value in rows:
                    copy.write_row((now, now, uuid.uuid4().hex, keys[s], event_type, value,
                                    when + shift, "{}", tenant.pk, pks[item]))
                    accepted += 1
    autovacuum_as_configured_by_default()
    timings["events_s"] = time.perf_counter() - started
    timings["events_accepted"] = accepted
    timings["subjects"] = len(subjects)
    return timings


def autovacuum_as_configured_by_default() -> None:
    """What PostgreSQL's autovacuum does by default once a fifth of a table is new rows
    (statistics, visibility map). Autovacuum is off on the development box, and without it
    the planner keeps the statistics of an empty tenant while millions of its rows arrive:
    the history cap's per-batch count then scanned the tenant's events through the
    ``(tenant, event_id)`` index (1,250 events/s instead of ~4,700 at 1M events)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE events_event")


def keep_all_events(tenant: Any) -> None:
    """The whole dataset is the benchmark: a 10-year events retention policy (the real
    data spans a year), so neither ingestion nor the training window drops any of it."""
    from apps.retention.services import set_retention_policy

    set_retention_policy(tenant=tenant, category="events", days=3650)


# --- Measurements ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def latency(fn: Any, args: list[Any], warmup: int = 20,
            prepare: Any = None) -> dict[str, float]:
    """Per-call milliseconds of ``fn(a)``; ``prepare(a)``, untimed, comes first when given
    (an API request's authentication) and ``fn`` gets its result too."""
    def call(a: Any) -> float:
        ready = (prepare(a),) if prepare is not None else ()
        t = time.perf_counter()
        fn(*ready, a)
        return (time.perf_counter() - t) * 1000

    for a in args[:warmup]:
        call(a)
    times = [call(a) for a in args]
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
            "mean_ms": statistics.fmean(times), "n": len(times)}


def _backend_cpu_s() -> float | None:
    """CPU seconds of this connection's PostgreSQL backend so far (``/proc``: only when the
    server runs on this machine), else ``None``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_read(tenant: Any, rounds: int) -> dict[str, Any]:
    """``--read-rounds``: the PostgreSQL reader of the snapshot alone (records, numbering,
    aggregation), ``rounds`` times inside a transaction, i.e. on this connection only (one
    reader), so that the server's CPU seconds can be read from ``/proc`` beside this
    process's: per million events, the figures that the box's load does not stretch the way
    it stretches wall seconds."""
    from django.db import transaction
    from django.utils import timezone

    from apps.events.selectors import get_event_schema, retention_days
    from apps.modeling.services.dataset import _read_postgres

    codes = sorted(get_event_schema(tenant=tenant).types)
    since = timezone.now() - timedelta(days=retention_days(tenant))
    figures = []
    for _ in range(rounds):
        with transaction.atomic():
            server, started, cpu = _backend_cpu_s(), time.perf_counter(), time.process_time()
            read = _read_postgres(tenant, codes, since)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            server = _backend_cpu_s() - server if server is not None else None
        if read is None:
            raise SystemExit("the PostgreSQL reader fell back to the portable path")
        million = read[2] / 1e6
        figures.append({"wall_s": wall, "process_cpu_s": cpu, "server_cpu_s": server,
                        "events": read[2], "load_average": os.getloadavg()[0]})
        print(f"read (one reader): {wall:.2f}s wall; CPU per million events: process "
              f"{cpu / million:.3f}s, PostgreSQL "
              f"{(server / million if server is not None else float('nan')):.3f}s; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    return {"rounds": figures}


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from apps.modeling.config import modeling_settings
    from apps.modeling.recommenders import get_recommender
    from apps.modeling.recommenders.als import make_als
    from apps.modeling.services import algorithms as alg
    from apps.modeling.services import (
        train_model,
    )
    from apps.modeling.services.dataset import snapshot_training_data
    from apps.tenants.services import create_tenant

    out: dict[str, Any] = {"dataset": name}
    print(f"\n=== {name} ===", flush=True)
    started = time.perf_counter()
    rows, titles = ([], {}) if args.reuse and (args.training_only or args.read_only) else \
        (retail_rows(Path(args.retail)) if name == "retail" else goodbooks_rows(args.users))
    print(f"read {len(rows)} rows, {len(titles)} items in {time.perf_counter() - started:.1f}s",
          flush=True)
    from apps.tenants.models import Tenant

    settings = {"event_history_cap": 100_000, "event_retention_days": 36500,
                "model_search_seconds": 0, "model_algorithms": ["als"],
                "model_retrain_debounce_seconds": 10**6}
    tenant = Tenant.objects.filter(slug=f"bench-{name}").first() \
        if args.reuse or args.bulk_load else None
    if tenant is None and not rows:
        raise SystemExit(f"--reuse: {args.db} holds no loaded bench-{name} tenant")
    if tenant is None or (args.bulk_load and not args.reuse):
        if tenant is None:
            tenant = create_tenant(slug=f"bench-{name}", name=f"Bench {name}")
        tenant.settings = settings
        tenant.save(update_fields=["settings"])
        keep_all_events(tenant)
        loaded = (bulk_load if args.bulk_load else load)(
            tenant, rows, titles, "purchase" if name == "retail" else "rating")
        out["load"] = loaded
        print(f"loaded: items {loaded['items_s']:.1f}s, consent {loaded['subjects']} subjects "
              f"{loaded['consent_s']:.1f}s, {loaded['events_accepted']} events "
              f"{loaded['events_s']:.1f}s "
              f"({loaded['events_accepted'] / loaded['events_s']:.0f}/s)", flush=True)
    else:
        tenant.settings = settings
        tenant.save(update_fields=["settings"])
        keep_all_events(tenant)
        print("reusing the loaded tenant", flush=True)
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum would have done by now
        cursor.execute("ANALYZE")  # consent tables too: serving checks consent per request
    raw_subjects = sorted({r[0] for r in rows})
    del rows

    # 2. Snapshot + CSR build.
    cfg = modeling_settings(tenant)
    t = time.perf_counter()
    data = snapshot_training_data(tenant=tenant, weighting=cfg.weighting)
    snapshot_s = time.perf_counter() - t
    out["snapshot"] = {"total_s": snapshot_s, **data.timings, **{
        k: data.stats[k] for k in ("subjects_consented", "items", "interactions")}}
    print(f"snapshot: {data.matrix.shape[0]} x {data.matrix.shape[1]}, {data.matrix.nnz} nnz; "
          f"stream {data.timings['stream_s']:.2f}s, consent {data.timings['consent_s']:.2f}s, "
          f"CSR build {data.timings['csr_build_s']:.2f}s (total {snapshot_s:.2f}s)", flush=True)
    if args.read_rounds:
        out["read"] = measure_read(tenant, args.read_rounds)
        if args.read_only:
            return out

    # 3. Bare implicit fit vs the platform, same matrix and parameters, ``--rounds`` times
    # interleaved (the order swapped every round, so a drift of the shared box's speed
    # weighs on both sides alike).
    als, bm25 = get_recommender("als"), get_recommender("bm25")
    als_params, bm25_params = als.base_params(cfg), bm25.base_params(cfg)

    cpu: dict[str, float] = {}  # this process's CPU seconds (PostgreSQL's not included)

    def bare_fit() -> float:
        t, c = time.perf_counter(), time.process_time()
        bare = make_als(als_params)
        bare.fit(data.matrix, show_progress=False)
        cpu["bare"] = time.process_time() - c
        return time.perf_counter() - t

    def platform_fit() -> tuple[float, Any]:
        t, c = time.perf_counter(), time.process_time()
        version = train_model(tenant=tenant)
        cpu["platform"] = time.process_time() - c
        return time.perf_counter() - t, version

    rounds = []
    for r in range(args.rounds):
        if r % 2 == 0:
            bare_fit_s = bare_fit()
            platform_s, version = platform_fit()
        else:
            platform_s, version = platform_fit()
            bare_fit_s = bare_fit()
        rounds.append({"bare_als_fit_s": bare_fit_s, "platform_als_end_to_end_s": platform_s,
                       "ratio": platform_s / bare_fit_s, "platform_timings": version.timings,
                       "bare_cpu_s": cpu["bare"], "platform_cpu_s": cpu["platform"]})
        print(f"round {r + 1}: bare implicit ALS fit {bare_fit_s:.2f}s; platform end-to-end "
              f"{platform_s:.2f}s -> ratio {platform_s / bare_fit_s:.3f}; process CPU "
              f"{cpu['bare']:.1f}s / {cpu['platform']:.1f}s "
              f"({cpu['platform'] / cpu['bare']:.3f}); stages "
              f"{version.timings}", flush=True)
    ratios = sorted(r["ratio"] for r in rounds)
    out["training"] = {**rounds[0], "rounds": rounds, "median_ratio": statistics.median(ratios),
                       "total_ratio": sum(r["platform_als_end_to_end_s"] for r in rounds)
                       / sum(r["bare_als_fit_s"] for r in rounds)}
    print(f"ratio per round {[round(x, 3) for x in ratios]}; median "
          f"{out['training']['median_ratio']:.3f}; sum over rounds "
          f"{out['training']['total_ratio']:.3f}", flush=True)
    if args.training_only:
        return out

    # 4. Quality: the platform's default (ALS + BM25, time-boxed search) vs bare models.
    tenant.settings = {**tenant.settings, "model_search_seconds": args.search_seconds,
                       "model_algorithms": ["als", "bm25"]}
    tenant.save(update_fields=["settings"])
    t = time.perf_counter()
    chosen = train_model(tenant=tenant)
    search_s = time.perf_counter() - t
    train, test = alg.holdout_split(data.matrix, data.last_seen, cfg.holdout_fraction)
    users = alg.eval_users(test, cfg.eval_max_users)
    bare_als, bare_bm25 = als(als_params), bm25(bm25_params)
    bare_als.fit(train)
    bare_bm25.fit(train)
    quality = {
        "platform_chosen": {"algorithm": chosen.algorithm, "params": chosen.params["chosen"],
                            **chosen.metrics["model"]},
        "bare_als": alg.evaluate_model(bare_als, train, test, users),
        "bare_bm25": alg.evaluate_model(bare_bm25, train, test, users),
        "popularity": alg.evaluate_popularity(train, test, users),
        "search": chosen.search, "search_train_s": search_s,
    }
    out["quality"] = quality
    for label in ("platform_chosen", "bare_als", "bare_bm25", "popularity"):
        m = quality[label]
        print(f"{label:16s} ndcg@10 {m['ndcg@10']:.4f}  p@10 {m['precision@10']:.4f}  "
              f"r@20 {m['recall@20']:.4f}  map@10 {m['map@10']:.4f}  "
              f"cov@10 {m['coverage@10']:.3f}", flush=True)
    print(f"chosen: {chosen.algorithm} {chosen.params['chosen']} (train with search "
          f"{search_s:.1f}s); searched {[(c['algorithm'], c['ndcg@10']) for c in chosen.search]}",
          flush=True)

    out["serving"] = measure_serving(tenant, data.user_keys, args)
    out["http"] = measure_http(tenant, raw_subjects, args)
    return out


def measure_serving(tenant: Any, consenting: list[str], args: argparse.Namespace
                    ) -> dict[str, Any]:
    """In-process p50/p99 per request kind, for each algorithm the platform can serve, and
    the same user requests over HTTP under concurrency (gunicorn)."""
    from django.core.files.storage import default_storage

    from apps.consent.selectors import get_subject_consent_views
    from apps.modeling.models import ModelVersion, ServingState
    from apps.modeling.recommenders import algorithm_names
    from apps.modeling.services import (
        recommend_for_session,
        recommend_for_subject,
        similar_items,
        train_model,
    )
    from apps.modeling.services.serving import current_model, score_subject
    from apps.tenants.services import authenticate_api_key, create_api_key

    results: dict[str, Any] = {}
    rng = np.random.default_rng(7)
    _, raw_key = create_api_key(tenant=tenant, name="bench in-process",
                                scopes=["recommendations:read"])

    def authenticated(_: Any) -> Any:
        """What a request has after API-key authentication (untimed): its tenant, loaded
        with the key, carrying the serving state that lookup read."""
        return authenticate_api_key(raw_key).tenant

    for algorithm in algorithm_names():
        tenant.settings = {**tenant.settings, "model_algorithms": [algorithm],
                           "model_search_seconds": 0, "model_activation_tolerance": 1.0}
        tenant.save(update_fields=["settings"])
        version = (ModelVersion.objects.for_tenant(tenant).filter(algorithm=algorithm)
                   .exclude(artifact_destroyed_at__isnull=False).order_by("-number").first())
        if version is None or not default_storage.exists(version.artifact_path):
            version = train_model(tenant=tenant)
        if version.status != ModelVersion.Status.ACTIVE:
            from apps.modeling.services import activate_version

            activate_version(tenant=tenant, version=version, note="bench")
        if ServingState.objects.for_tenant(tenant).get().active_version_id != version.pk:
            raise SystemExit(f"{algorithm}: the version to measure is not active")
        model = current_model(tenant)
        keys = [consenting[i] for i in rng.integers(0, len(consenting), args.requests)]
        rows = [model.artifact.user_row(k) for k in keys]
        item_ids = [x for x in model.catalog.external_ids.tolist() if x]
        sessions = [list(rng.choice(item_ids, 5)) for _ in range(args.requests)]
        probes = list(rng.choice(item_ids, args.requests))
        figures = {
            "user_scoring_only": latency(lambda r, m=model: score_subject(m, r, n=10), rows),
            "consent_check_only": latency(lambda t, k: get_subject_consent_views(
                tenant=t, subject_keys=[k]), keys, prepare=authenticated),
            "user": latency(lambda t, k: recommend_for_subject(tenant=t, subject_key=k, n=10),
                            keys, prepare=authenticated),
            "user_explained": latency(lambda t, k: recommend_for_subject(
                tenant=t, subject_key=k, n=10, explain=True), keys[:300],
                prepare=authenticated),
            "session": latency(lambda t, s: recommend_for_session(tenant=t, recent_items=s,
                                                                  n=10),
                               sessions, prepare=authenticated),
            "similar": latency(lambda t, i: similar_items(tenant=t, item=i, n=10), probes,
                               prepare=authenticated),
        }
        results[algorithm] = figures
        for kind, f in figures.items():
            print(f"serving {algorithm:4s} {kind:18s} p50 {f['p50_ms']:.2f} ms  "
                  f"p99 {f['p99_ms']:.2f} ms  (n={f['n']}, {len(item_ids)} items)", flush=True)
    return results


def measure_http(tenant: Any, raw_subjects: list[str], args: argparse.Namespace
                 ) -> dict[str, Any]:
    """``GET /api/v1/recommendations`` through gunicorn (2 sync workers) with
    ``--concurrency`` clients for ``--http-seconds``."""
    import logging
    import subprocess
    import threading

    import httpx

    from apps.tenants.services import create_api_key

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    _, key = create_api_key(tenant=tenant, name="bench", scopes=["recommendations:read"])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "platform_site.settings.test"}
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "gunicorn", "platform_site.wsgi", "-w", "2", "-b",
         "127.0.0.1:8765", "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        client = httpx.Client(base_url="http://127.0.0.1:8765",
                              headers={"Authorization": f"Bearer {key}"})
        for _ in range(100):
            try:
                client.get("/healthz")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        rng = np.random.default_rng(3)
        for s in raw_subjects[:50]:  # warm both workers' caches
            client.get("/api/v1/recommendations", params={"subject": s})
        times: list[float] = []
        lock = threading.Lock()
        deadline = time.perf_counter() + args.http_seconds

        def worker(seed: int) -> None:
            local = np.random.default_rng(seed)
            with httpx.Client(base_url="http://127.0.0.1:8765",
                              headers={"Authorization": f"Bearer {key}"}) as c:
                while time.perf_counter() < deadline:
                    s = raw_subjects[int(local.integers(0, len(raw_subjects)))]
                    t = time.perf_counter()
                    r = c.get("/api/v1/recommendations", params={"subject": s, "n": 10})
                    r.raise_for_status()
                    with lock:
                        times.append((time.perf_counter() - t) * 1000)

        threads = [threading.Thread(target=worker, args=(int(rng.integers(1 << 30)),))
                   for _ in range(args.concurrency)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=20)
    figures = {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
               "requests_per_s": len(times) / elapsed, "n": len(times),
               "concurrency": args.concurrency}
    print(f"HTTP user recommendations, {args.concurrency} clients, gunicorn -w 2: "
          f"p50 {figures['p50_ms']:.1f} ms  p99 {figures['p99_ms']:.1f} ms  "
          f"{figures['requests_per_s']:.0f} req/s", flush=True)
    return figures


def serving_only(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure serving again on the tenants a previous run left in ``--db``."""
    from apps.modeling.services import current_model
    from apps.tenants.models import Tenant

    results = []
    for name in (["retail", "goodbooks"] if args.dataset == "both" else [args.dataset]):
        tenant = Tenant.objects.filter(slug=f"bench-{name}").first()
        if tenant is None:
            continue
        print(f"\n=== {name} (serving only) ===", flush=True)
        model = current_model(tenant)
        consenting = [k.decode() for k in model.artifact.user_keys]
        raw = (sorted({r[0] for r in retail_rows(Path(args.retail))[0]}) if name == "retail"
               else [f"reader-{u}" for u in range(1, args.users + 1)])
        results.append({"dataset": name, "serving": measure_serving(tenant, consenting, args),
                        "http": measure_http(tenant, raw, args)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["retail", "goodbooks", "both"], default="both")
    parser.add_argument("--retail", default=str(RETAIL))
    parser.add_argument("--users", type=int, default=53424,
                        help="goodbooks users (53,424 = the full 6M ratings)")
    parser.add_argument("--search-seconds", type=float, default=60.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--db", default="discreet_bench_train")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--serving-only", action="store_true",
                        help="reuse --db from a previous run: serving figures only")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse --db and its loaded tenants: skip loading")
    parser.add_argument("--bulk-load", action="store_true",
                        help="load by SQL (bulk_load) instead of the services; resumes a "
                             "partial load of --db")
    parser.add_argument("--rounds", type=int, default=1,
                        help="bare fit / platform training pairs, interleaved")
    parser.add_argument("--training-only", action="store_true",
                        help="stop after the bare-vs-platform training measurement")
    parser.add_argument("--read-rounds", type=int, default=0,
                        help="time the PostgreSQL snapshot reader alone this many times "
                             "(one reader: process and server CPU per million events)")
    parser.add_argument("--read-only", action="store_true",
                        help="stop after --read-rounds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--http-seconds", type=float, default=20.0)
    args = parser.parse_args()
    _setup_django(args, fresh=not (args.serving_only or args.reuse or args.bulk_load))
    from threadpoolctl import threadpool_info

    print("BLAS:", [(lib["internal_api"], lib["num_threads"]) for lib in threadpool_info()])
    names = ["retail", "goodbooks"] if args.dataset == "both" else [args.dataset]
    results = (serving_only(args) if args.serving_only
               else [run_dataset(name, args) for name in names])
    import json

    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    path = out / f"train-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
