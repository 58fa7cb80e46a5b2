"""Ingestion benchmark: end-to-end HTTP ingestion vs. a raw COPY of the same rows.

    .venv/bin/python bench/ingest.py [--events 200000] [--batch 500] [--subjects 50000]

What it does, in one run:

1. creates a fresh PostgreSQL database (``--db``, default ``discreet_bench``) and migrates it;
2. sets up a tenant, an API key, the catalog (10,000 items) and consent for 90% of the
   subjects, all through the services;
3. builds goodbooks-shaped events: the seeded generator of
   ``../shared/data/goodbooks-10k/synthesize.py`` (re-implemented with numpy only, same
   algorithm and seed) run for ``--subjects`` users over the real ``books.csv.gz``; the
   first ``--events`` shuffled ratings become ``rating`` events;
4. starts gunicorn (``--workers`` sync workers, DEBUG off) on the real stack and sends the
   events in batches of ``--batch`` from a separate process through ``discreet_client``,
   ``--concurrency`` requests in flight;
5. exports the stored rows, truncates the table and times ``COPY ... FROM STDIN`` of exactly
   those rows into the same table (same indexes and constraints): the ceiling;
6. prints events/s end to end, p50/p99 batch latency, the COPY ceiling and the ratio.

Nothing is asserted: figures go to bench/README.md. Needs PostgreSQL on 127.0.0.1:5432
(``--pg``) and Redis on 127.0.0.1:6379 (``--redis``; the history-cap task messages go to a
private queue that is deleted afterwards).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import multiprocessing as mp
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common  # bench/common.py: scripts run as `python bench/<name>.py`
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOODBOOKS = Path(os.environ.get("GOODBOOKS_DIR",
                               ROOT.parent / "shared" / "data" / "goodbooks-10k"))
OUT = ROOT / "bench" / "out"
BENCH_QUEUE = "discreet-bench-ingest"
SEED = 20240601


# --- Data: synthesize.py's algorithm, numpy only (no pandas here) ---------------------------


def _books() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(GOODBOOKS / "books.csv.gz", "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    pop = np.array([float(r["work_ratings_count"]) for r in rows])
    hist = np.array([[float(r[f"ratings_{i}"]) for i in range(1, 6)] for r in rows])
    return pop, hist


def synthesize(n_users: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(user_id, book_id, rating)`` arrays, 1-based ids, shuffled: the same rows as
    ``synthesize.py OUT --users n_users --seed seed`` writes."""
    rng = np.random.default_rng(seed)
    pop, hist = _books()
    hist_cdf = np.cumsum(hist / hist.sum(1, keepdims=True), 1)
    n_items, dim, gamma, user_scale = len(pop), 16, 1.18, 0.55
    item_taste = rng.standard_normal((n_items, dim)).astype(np.float32)
    per_user = np.clip(np.rint(rng.normal(111.87, 26.07, n_users)), 19, 200).astype(np.int64)
    bias = (gamma * np.log(pop)).astype(np.float32)
    rows, cols = [], []
    for start in range(0, n_users, 2048):
        end = min(start + 2048, n_users)
        taste = (rng.standard_normal((end - start, dim)) * user_scale).astype(np.float32)
        logits = (bias[None, :] + taste @ item_taste.T
                  + rng.gumbel(size=(end - start, n_items)).astype(np.float32))
        top = np.argpartition(-logits, 200, axis=1)[:, :200]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(logits, top, 1), axis=1), 1)
        for j in range(end - start):
            cols.append(top[j, : per_user[start + j]])
            rows.append(np.full(per_user[start + j], start + j, dtype=np.int64))
    users, books = np.concatenate(rows), np.concatenate(cols)
    stars = 1 + (rng.random(len(books))[:, None] > hist_cdf[books]).sum(1)
    order = rng.permutation(len(books))
    return users[order] + 1, books[order] + 1, stars[order]


def ratings(n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cached in bench/out/ (git-ignored): generating takes about half a minute."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"ratings-{n_users}-{SEED}.npz"
    if not path.exists():
        started = time.perf_counter()
        users, books, stars = synthesize(n_users)
        np.savez(path, users=users, books=books, stars=stars)
        print(f"  synthesized {len(users):,} ratings in {time.perf_counter() - started:.0f} s")
    data = np.load(path, allow_pickle=False)
    return data["users"], data["books"], data["stars"]


def build_events(users: np.ndarray, books: np.ndarray, stars: np.ndarray, count: int
                 ) -> list[dict[str, Any]]:
    """The first ``count`` ratings as client events: a ``rating`` with its stars, two
    allow-listed properties and one that minimization drops."""
    rng = np.random.default_rng(SEED + 1)
    now = datetime.now(UTC)
    ages = rng.integers(60, 30 * 86400, size=count)
    positions = rng.integers(1, 20, size=count)
    sources = np.array(["home", "search", "similar", "email"])[rng.integers(0, 4, size=count)]
    return [
        {
            "event_id": f"bench-{i:08d}",
            "subject": f"user-{int(users[i])}",
            "item": f"book-{int(books[i])}",
            "type": "rating",
            "value": float(stars[i]),
            "occurred_at": (now - timedelta(seconds=int(ages[i]))).isoformat(),
            "properties": {"source": str(sources[i]), "position": int(positions[i]),
                           "referrer": "https://example.com/"},
        }
        for i in range(count)
    ]


# --- Environment ------------------------------------------------------------------------------


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    return common.bench_env(args, **{
        "CELERY_BROKER_URL": args.redis, "CELERY_TASK_DEFAULT_QUEUE": BENCH_QUEUE,
        "API_KEY_RATE": "1000000/min", "ALLOWED_HOSTS": "127.0.0.1,localhost"})


def recreate_database(args: argparse.Namespace) -> None:
    common.recreate_database(args, bench_env(args))


def _django(args: argparse.Namespace) -> None:
    common.setup_django(bench_env(args))


def _consent_worker(args: argparse.Namespace, tenant_id: int, subjects: list[str]) -> int:
    """Record consent for ``subjects`` through the consent service (own process)."""
    _django(args)
    from apps.consent.services import record_consents
    from apps.tenants.models import Tenant
    from apps.tenants.services import pseudonymize_many

    tenant = Tenant.objects.get(pk=tenant_id)
    keys = pseudonymize_many(tenant, subjects)
    for raw in subjects:
        record_consents(tenant=tenant, subject_key=keys[raw],
                        decisions={"personalization": True}, level="full", source="import")
    return len(subjects)


def setup_tenant(args: argparse.Namespace, n_users: int, consent_share: float) -> str:
    """Tenant, key, catalog and consent through the services; returns the raw API key."""
    _django(args)
    from django.db import connections

    from apps.events.services import upsert_items
    from apps.tenants.models import Scope, Tenant
    from apps.tenants.services import create_api_key, create_tenant

    tenant = Tenant.objects.filter(slug="bench").first()
    if tenant is None:
        tenant = create_tenant(slug="bench", name="Bench Books")
        started = time.perf_counter()
        pop, _ = _books()
        items = [{"item": f"book-{n}", "title": f"Book {n}", "categories": ["books"],
                  "attributes": {"language": "en"}} for n in range(1, len(pop) + 1)]
        for start in range(0, len(items), 1000):
            upsert_items(tenant=tenant, items=items[start:start + 1000])
        rng = np.random.default_rng(SEED + 2)
        consenting = [f"user-{n}" for n in range(1, n_users + 1)
                      if rng.random() < consent_share]
        connections.close_all()
        # The consent service records one subject per call; spread them over processes.
        ctx = mp.get_context("spawn")
        procs = max(2, os.cpu_count() or 2)
        with ctx.Pool(procs) as pool:
            done = sum(pool.starmap(_consent_worker, [
                (args, tenant.pk, consenting[k::procs]) for k in range(procs)]))
        print(f"  catalog {len(items):,} items, consent for {done:,}/{n_users:,} "
              f"subjects in {time.perf_counter() - started:.0f} s")
    _, raw_key = create_api_key(tenant=tenant, name="bench",
                                scopes=[Scope.EVENTS_WRITE, Scope.CATALOG_WRITE])
    connections.close_all()
    return raw_key


def truncate_events(args: argparse.Namespace) -> None:
    """Empty the events table and bring the planner's statistics up to date: right after a
    bulk setup they are stale (autovacuum has not run yet), and the consent lookups would
    then scan the tenant's whole state table instead of using the subject index."""
    import psycopg

    with psycopg.connect(f"{args.pg}/{args.db}", autocommit=True) as conn:
        conn.execute("TRUNCATE events_event")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def start_gunicorn(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    log = (OUT / "gunicorn.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [str(Path(sys.executable).parent / "gunicorn"), args.wsgi,
         "--workers", str(args.workers), "--bind", f"127.0.0.1:{args.port}",
         "--log-level", "warning", "--timeout", "120"],
        cwd=ROOT, env=bench_env(args), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop(process)
    raise SystemExit("gunicorn did not become healthy; see bench/out/gunicorn.log")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def backend_cpu(args: argparse.Namespace) -> dict[int, float]:
    """CPU used so far by each PostgreSQL backend connected to the bench database."""
    import psycopg

    with psycopg.connect(f"{args.pg}/{args.db}", autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [args.db])]
    return {pid: cpu_seconds(pid) for pid in pids}


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- The client process ------------------------------------------------------------------------


def client_process(base_url: str, api_key: str, events: list[dict[str, Any]], batch: int,
                   concurrency: int, results: Any) -> None:
    """Runs in its own process: ``concurrency`` threads, one client each, batches from a
    shared queue. Sends back (wall seconds, per-batch latencies, totals)."""
    sys.path.insert(0, str(ROOT))
    from discreet_client import DiscreetClient

    batches: queue.Queue[list[dict[str, Any]]] = queue.Queue()
    for start in range(0, len(events), batch):
        batches.put(events[start:start + batch])
    latencies: list[float] = []
    totals: dict[str, float] = {"accepted": 0, "duplicates": 0, "rejected": 0, "retries": 0}
    lock = threading.Lock()
    errors: list[str] = []

    def work() -> None:
        with DiscreetClient(base_url, api_key, batch_size=min(batch, 1000), timeout=120) as c:
            while True:
                try:
                    chunk = batches.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                try:
                    body, retries = c.send_batch(chunk)
                except Exception as exc:
                    errors.append(repr(exc))
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    for name in ("accepted", "duplicates", "rejected"):
                        totals[name] += body[name]
                    totals["retries"] += retries

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    cpu_started = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    totals["client_cpu"] = time.process_time() - cpu_started
    results.put((wall, latencies, totals, errors[:5]))


def run_http(args: argparse.Namespace, api_key: str, events: list[dict[str, Any]]
             ) -> tuple[float, list[float], dict[str, float], list[str]]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    process = ctx.Process(target=client_process, args=(
        f"http://127.0.0.1:{args.port}", api_key, events, args.batch, args.concurrency,
        results))
    process.start()
    outcome = results.get()
    process.join()
    return outcome


# --- COPY ceiling ---------------------------------------------------------------------------

COLUMNS = ("tenant_id", "event_id", "subject_key", "item_id", "type", "value", "occurred_at",
           "properties", "created_at", "updated_at")


def copy_ceiling(args: argparse.Namespace) -> tuple[int, float, float]:
    """Export the stored rows, empty the table, time COPY FROM STDIN of the same rows."""
    import psycopg

    cols = ", ".join(COLUMNS)
    with psycopg.connect(f"{args.pg}/{args.db}") as conn:
        buffer = io.BytesIO()
        export = f"COPY (SELECT {cols} FROM events_event ORDER BY id) TO STDOUT"  # noqa: S608
        with conn.cursor() as cur:
            with cur.copy(export) as copy:
                for block in copy:
                    buffer.write(block)
            cur.execute("SELECT count(*) FROM events_event")
            rows = cur.fetchone()[0]
            cur.execute("TRUNCATE events_event")
        conn.commit()
        conn.execute("CHECKPOINT")
        data = buffer.getvalue()
        backend = conn.info.backend_pid
        cpu_before = cpu_seconds(backend)
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY events_event ({cols}) FROM STDIN") as copy:
            for start in range(0, len(data), 1 << 20):
                copy.write(data[start:start + (1 << 20)])
        conn.commit()
        elapsed = time.perf_counter() - started
        copy_cpu = cpu_seconds(backend) - cpu_before
    return rows, elapsed, copy_cpu


def delete_bench_queue(args: argparse.Namespace) -> int:
    import redis

    client = redis.Redis.from_url(args.redis)
    pending = client.llen(BENCH_QUEUE)
    client.delete(BENCH_QUEUE)
    return int(pending)


# --- Main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--subjects", type=int, default=50_000)
    parser.add_argument("--consent", type=float, default=0.9, help="share of consenting "
                        "subjects")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", default="discreet_bench")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--wsgi", default="platform_site.wsgi:application",
                        help="WSGI application gunicorn serves (to compare a variant)")
    parser.add_argument("--reuse", action="store_true", help="keep the database, tenant, "
                        "catalog and consent of an earlier run (only the events are emptied)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    print(f"ingest bench: {args.events:,} events, batches of {args.batch}, "
          f"{args.subjects:,} subjects, {args.workers} gunicorn workers, "
          f"{args.concurrency} in flight, {os.cpu_count()} CPUs")
    users, books, stars = ratings(args.subjects)
    events = build_events(users, books, stars, args.events)
    print(f"  {len(events):,} events from {len(set(users[:args.events].tolist())):,} subjects "
          f"and {len(set(books[:args.events].tolist())):,} items")
    if args.reuse:
        common.migrate(bench_env(args))  # an earlier run's data, today's schema
    else:
        recreate_database(args)
    api_key = setup_tenant(args, args.subjects, args.consent)
    truncate_events(args)

    server = start_gunicorn(args)
    try:
        workers = children(server.pid)
        workers_before = sum(cpu_seconds(pid) for pid in workers)
        backends_before = backend_cpu(args)
        wall, latencies, totals, errors = run_http(args, api_key, events)
        workers_cpu = sum(cpu_seconds(pid) for pid in workers) - workers_before
        backends_cpu = sum(cpu - backends_before.get(pid, 0.0)
                           for pid, cpu in backend_cpu(args).items())
    finally:
        stop(server)
    pending = delete_bench_queue(args)
    if errors:
        print(f"  client errors (first {len(errors)}): {errors}")
    rows, copy_seconds, copy_cpu = copy_ceiling(args)

    if not latencies:
        sys.exit("no batch succeeded: see the client errors above (and the server's log)")
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    http_rate = len(events) / wall
    stored_rate = totals["accepted"] / wall
    copy_rate = rows / copy_seconds
    print(f"HTTP end to end : {http_rate:,.0f} events/s ({len(events):,} events in "
          f"{wall:.1f} s; {totals['accepted']:,} stored = {stored_rate:,.0f} rows/s, "
          f"{totals['rejected']:,} rejected, {totals['duplicates']:,} duplicates, "
          f"{totals['retries']} retries)")
    print(f"batch latency   : p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(latencies)} batches)")
    print(f"COPY ceiling    : {copy_rate:,.0f} rows/s ({rows:,} rows in {copy_seconds:.2f} s)")
    print(f"ratio           : {http_rate / copy_rate:.0%} (events/s vs COPY rows/s); "
          f"{stored_rate / copy_rate:.0%} counting stored rows only")
    per_k = 1000 / len(events)
    http_cpu = workers_cpu + backends_cpu + totals["client_cpu"]
    print(f"CPU per 1k events: gunicorn {workers_cpu * per_k * 1000:.0f} ms, PostgreSQL "
          f"{backends_cpu * per_k * 1000:.0f} ms, client {totals['client_cpu'] * per_k * 1000:.0f}"
          f" ms; COPY {copy_cpu / rows * 1e6:.0f} ms per 1k rows; load average "
          f"{os.getloadavg()[0]:.1f}")
    cores = os.cpu_count() or 1
    projected_http = cores * len(events) / http_cpu
    projected_copy = rows / copy_cpu
    print(f"CPU-bound projection on {cores} idle cores: HTTP {projected_http:,.0f} events/s vs "
          f"COPY {projected_copy:,.0f} rows/s = {projected_http / projected_copy:.0%} "
          "(assumes perfect use of every core: an upper bound)")
    print(f"  ({pending} history-cap task messages were queued; the bench runs no worker)")


if __name__ == "__main__":
    main()
