"""Retention benchmark: delete expired events while ingestion runs in parallel.

    .venv/bin/python bench/retention.py [--events 3000000] [--expired 1000000]

What it does, in one run:

1. creates a fresh PostgreSQL database (``--db``, default ``discreet_bench_retention``) and
   migrates it;
2. sets up a tenant, a catalog of ``--items`` items and ``--ingest-subjects`` consenting
   subjects through the services;
3. loads ``--events`` events server-side (``INSERT ... SELECT generate_series``, in chunks):
   the first ``--expired`` are 400-700 days old (past the 365-day policy), the rest spread
   over the last 360 days, from ``--subjects`` subjects; then ``VACUUM ANALYZE``;
4. starts an ingestion process that calls the real ingestion service
   (``apps.events.services.ingest_events``: pseudonymize, consent gate, minimize, dedupe,
   bulk insert) in batches of ``--ingest-batch`` events, back to back, and records each
   batch's latency;
5. measures ingestion for ``--baseline`` seconds, then runs retention
   (``enforce_retention_now``, the same code as ``manage.py enforce_retention``: batches of
   ``--batch-size`` rows per DELETE) while ingestion continues, then a few seconds more;
6. prints deletion throughput and ingestion p50/p99 before vs during the run (target:
   p99 during <= 2x before).

Nothing is asserted: figures go to bench/README.md. Needs PostgreSQL on 127.0.0.1:5432
(``--pg``). Celery messages (the history-cap task ingestion enqueues) go to an in-memory
broker and are dropped: they are not what is measured.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common  # bench/common.py: scripts run as `python bench/<name>.py`

ROOT = Path(__file__).resolve().parent.parent
LOAD_CHUNK = 250_000


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    return common.bench_env(args, **{
        "CELERY_BROKER_URL": "memory://", "RETENTION_BATCH_SIZE": str(args.batch_size),
        "RETENTION_PAUSE_RATIO": str(args.pause_ratio)})


def _django(args: argparse.Namespace) -> None:
    common.setup_django(bench_env(args))


def recreate_database(args: argparse.Namespace) -> None:
    common.recreate_database(args, bench_env(args))


def setup_tenant(args: argparse.Namespace) -> int:
    """Tenant, catalog and consenting subjects through the services; returns the tenant id."""
    _django(args)
    from apps.consent.services import record_consents
    from apps.events.services import upsert_items
    from apps.tenants.services import create_tenant, pseudonymize

    started = time.perf_counter()
    tenant = create_tenant(slug="bench-retention", name="Bench Retention")
    items = [{"item": f"book-{n}", "title": f"Book {n}"} for n in range(args.items)]
    for start in range(0, len(items), 1000):
        upsert_items(tenant=tenant, items=items[start:start + 1000])
    for n in range(args.ingest_subjects):
        record_consents(tenant=tenant, subject_key=pseudonymize(tenant, f"live-{n}"),
                        decisions={"personalization": True}, level="full", source="import")
    print(f"  tenant, {args.items:,} items, {args.ingest_subjects:,} consenting subjects in "
          f"{time.perf_counter() - started:.0f} s")
    return tenant.pk


def load_events(args: argparse.Namespace, tenant_id: int) -> None:
    """Server-side generation: no row crosses the wire."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(f"{args.pg}/{args.db}", autocommit=True) as conn:
        first_item, items = conn.execute(
            "SELECT min(id), count(*) FROM events_item WHERE tenant_id = %s",
            [tenant_id]).fetchone()
        for lo in range(1, args.events + 1, LOAD_CHUNK):
            hi = min(lo + LOAD_CHUNK - 1, args.events)
            # Every value below is an int from argparse or the database: no injection.
            conn.execute(f"""
                INSERT INTO events_event (tenant_id, event_id, subject_key, item_id, type,
                                          value, occurred_at, properties, created_at,
                                          updated_at)
                SELECT {tenant_id}, 'load-' || g,
                       encode(sha256(convert_to('subject-' || (g % {args.subjects}), 'UTF8')),
                              'hex'),
                       {first_item} + (g % {items}), 'view', NULL,
                       CASE WHEN g <= {args.expired}
                            THEN now() - interval '400 days' - (g % 300) * interval '1 day'
                                 - (g % 86400) * interval '1 second'
                            ELSE now() - (g % 360) * interval '1 day'
                                 - (g % 86400) * interval '1 second' END,
                       '{{}}'::jsonb, now(), now()
                FROM generate_series({lo}, {hi}) AS g
            """)
            print(f"  loaded {hi:,}/{args.events:,} events "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        conn.execute("VACUUM ANALYZE events_event")
    print(f"  {args.events:,} events ({args.expired:,} expired) loaded and analyzed in "
          f"{time.perf_counter() - started:.0f} s")


def ingestion_process(args: argparse.Namespace, tenant_id: int, stop: Any, results: Any
                      ) -> None:
    """Own process: ingest batches back to back until ``stop``; send back
    ``[(started_at_epoch, latency_s, accepted), ...]``."""
    import random

    _django(args)
    from apps.events.services import ingest_events
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.get(pk=tenant_id)
    rng = random.Random(7)
    samples: list[tuple[float, float, int]] = []
    while not stop.is_set():
        now = datetime.now(UTC)
        batch = [{"event_id": uuid.uuid4().hex,
                  "subject": f"live-{rng.randrange(args.ingest_subjects)}",
                  "item": f"book-{rng.randrange(args.items)}", "type": "view",
                  "occurred_at": (now - timedelta(seconds=rng.randrange(600))).isoformat()}
                 for _ in range(args.ingest_batch)]
        started = time.perf_counter()
        wall = time.time()
        report = ingest_events(tenant=tenant, events=batch)
        samples.append((wall, time.perf_counter() - started, report.as_dict()["accepted"]))
    results.put(samples)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def window(samples: list[tuple[float, float, int]], start: float, end: float) -> list[float]:
    """Latencies of the batches that *started* inside ``[start, end)``."""
    return [latency for wall, latency, _ in samples if start <= wall < end]


def run_retention(args: argparse.Namespace, tenant_id: int
                  ) -> tuple[float, float, dict[str, Any], list[Any]]:
    _django(args)
    from apps.retention.models import RetentionReceipt
    from apps.retention.services import enforce_retention_now
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.get(pk=tenant_id)
    start = time.time()
    deleted = enforce_retention_now(tenant=tenant)
    end = time.time()
    receipts = list(RetentionReceipt.objects.for_tenant(tenant).order_by("pk"))
    return start, end, deleted, receipts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--expired", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--ingest-subjects", type=int, default=500)
    parser.add_argument("--ingest-batch", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=10_000, help="rows per DELETE")
    parser.add_argument("--pause-ratio", type=float, default=1.0, help="RETENTION_PAUSE_RATIO: "
                        "pause after each full batch, in multiples of its duration")
    parser.add_argument("--baseline", type=float, default=30.0, help="seconds of ingestion "
                        "measured before the run")
    parser.add_argument("--db", default="discreet_bench_retention")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind")
    args = parser.parse_args()

    print(f"retention bench: {args.events:,} events, {args.expired:,} expired, DELETE batches "
          f"of {args.batch_size:,}, ingestion batches of {args.ingest_batch} "
          f"({os.cpu_count()} CPUs)")
    recreate_database(args)
    tenant_id = setup_tenant(args)
    load_events(args, tenant_id)
    from django.db import connections

    connections.close_all()

    ctx = mp.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    ingester = ctx.Process(target=ingestion_process, args=(args, tenant_id, stop, results))
    ingester.start()
    time.sleep(5)  # warm-up: imports, connection, first batches (not measured)
    baseline_start = time.time()
    time.sleep(args.baseline)
    baseline_end = time.time()
    run_start, run_end, deleted, receipts = run_retention(args, tenant_id)
    receipt = next(r for r in receipts if r.category == "events")
    time.sleep(3)
    stop.set()
    samples = results.get()
    ingester.join()

    before = window(samples, baseline_start, baseline_end)
    during = window(samples, run_start, run_end)
    accepted = sum(n for wall, _, n in samples if run_start <= wall < run_end)
    p99_before, p99_during = percentile(before, 0.99), percentile(during, 0.99)
    run_s = run_end - run_start
    events_s = receipt.duration_seconds
    print(f"deleted          : {deleted}")
    print("category seconds : " + ", ".join(f"{r.category} {r.duration_seconds:.2f}"
                                            for r in receipts) + " (inside batches)")
    print(f"deletion         : {receipt.deleted:,} events in {events_s:.1f} s of DELETE "
          f"batches = {receipt.deleted / max(events_s, 1e-9):,.0f} rows/s "
          f"({receipt.batches} batches of <= {args.batch_size:,}); whole run with pauses "
          f"(ratio {args.pause_ratio}) and every category {run_s:.1f} s = "
          f"{receipt.deleted / run_s:,.0f} rows/s")
    print(f"ingestion before : p50 {statistics.median(before) * 1000:.1f} ms, "
          f"p99 {p99_before * 1000:.1f} ms ({len(before)} batches of {args.ingest_batch})")
    print(f"ingestion during : p50 {statistics.median(during) * 1000:.1f} ms, "
          f"p99 {p99_during * 1000:.1f} ms ({len(during)} batches, {accepted:,} events "
          f"stored meanwhile)")
    print(f"p99 during/before: {p99_during / p99_before:.2f}x (target <= 2x)")

    if not args.keep_db:
        import psycopg

        connections.close_all()
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
