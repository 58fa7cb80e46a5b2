"""Erasure benchmark: one subject with 10,000 events, a consent history and a factor row in
the active model, erased on PostgreSQL by a real Celery worker.

    .venv/bin/python bench/erasure.py [--events 10000] [--runs 3] [--background 2000]
                                      [--filler 0]

What it does, in one run:

1. creates a fresh PostgreSQL database (``--db``, default ``discreet_bench_erasure``) and
   migrates it;
2. sets up a tenant with a catalog of ``--items`` items and ``--background`` other
   consenting subjects with ``--per-subject`` events each, plus ``--runs`` (and one warm-up)
   target subjects, each with a consent history (grant, level, a change of mind, a
   re-grant), ``--events`` events (generated server-side), optionally ``--filler`` events
   of other, unconsented subjects (a bigger database for the verifier to scan), and then
   trains an ALS model, so every target has a factor row in the active model;
3. starts a real Celery worker (concurrency 1) on a private Redis queue;
4. for each target: files an erasure request through the portal path (email identifier,
   one-time token), then times from the verification (``verify_with_token``, which commits
   and sends the job) until the request is ``completed``, polling the database; the first,
   warm-up erasure is reported apart;
5. afterwards counts the rows left for every target in every subject-bearing table (outside
   the two exempt proof columns) and runs the erasure verifier again (every table,
   artifacts, caches, export files): both must be 0.

Prints wall time per erasure (verification -> completed), the worker's own time
(``verified_at`` -> ``completed_at``) and the time of each handler step and of the final
verification. Nothing is asserted: figures go to bench/README.md. Needs PostgreSQL on
127.0.0.1:5432 (``--pg``) and Redis (``--redis``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import common  # bench/common.py: scripts run as `python bench/<name>.py`

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "discreet-bench-erasure"
FAST_MODEL = {"model_algorithms": ["als"], "model_factors": 32, "model_iterations": 10,
              "model_search_seconds": 0, "model_threads": 1,
              # No retrain while the bench runs: each erasure patches the active model.
              "model_retrain_debounce_seconds": 86400,
              # The targets' 10,000 events are 250x the background's 40: without this the
              # quarantine (docs/modeling.md) would keep them out of the model to erase.
              "model_quarantine_min_events": 10**9}


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    return common.bench_env(args, **{
        "CELERY_BROKER_URL": args.redis, "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "MEDIA_ROOT": args.media, "EMAIL_URL": "dummymail://"})


def _django(args: argparse.Namespace) -> None:
    common.setup_django(bench_env(args))


def recreate_database(args: argparse.Namespace) -> None:
    common.recreate_database(args, bench_env(args))


def _insert_events(tenant_id: int, subject_key: str, count: int, offset: int) -> None:
    """Server-side generation: ``count`` events of one subject over the catalog."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), count(*) FROM events_item WHERE tenant_id = %s",
                       [tenant_id])
        first_item, items = cursor.fetchone()
        cursor.execute(
            """
            INSERT INTO events_event (tenant_id, event_id, subject_key, item_id, type, value,
                                      occurred_at, properties, created_at, updated_at)
            SELECT %s, 'b' || %s || '-' || g, %s, %s + ((g * 7 + %s) %% %s),
                   (ARRAY['view', 'click', 'add_to_cart', 'purchase'])[1 + g %% 4], NULL,
                   now() - (g || ' minutes')::interval, '{}'::jsonb, now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [tenant_id, offset, subject_key, first_item, offset, items, count])


def _insert_filler(tenant_id: int, count: int) -> None:
    """Rows of subjects without consent (never trained on): they only make every table the
    erasure verifier scans bigger."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), count(*) FROM events_item WHERE tenant_id = %s",
                       [tenant_id])
        first_item, items = cursor.fetchone()
        for lo in range(1, count + 1, 250_000):
            hi = min(lo + 249_999, count)
            cursor.execute(
                """
                INSERT INTO events_event (tenant_id, event_id, subject_key, item_id, type,
                                          value, occurred_at, properties, created_at,
                                          updated_at)
                SELECT %s, 'f-' || g,
                       encode(sha256(convert_to('filler-' || (g %% 50000), 'UTF8')), 'hex'),
                       %s + (g %% %s), 'view', NULL, now() - (g || ' seconds')::interval,
                       '{}'::jsonb, now(), now()
                FROM generate_series(%s, %s) AS g
                """, [tenant_id, first_item, items, lo, hi])
        cursor.execute("ANALYZE events_event")


def setup(args: argparse.Namespace) -> tuple[int, list[str]]:
    """Tenant, catalog, background subjects, targets with history, a trained model.
    Returns the tenant id and the targets' raw ids (warm-up first)."""
    _django(args)
    from apps.consent.services import record_consents
    from apps.events.services import upsert_items
    from apps.modeling.services import artifacts_holding_subject, train_model
    from apps.tenants.services import create_tenant, pseudonymize

    started = time.perf_counter()
    tenant = create_tenant(slug="bench-erasure", name="Bench Erasure")
    tenant.settings = {**tenant.settings, **FAST_MODEL}
    tenant.save(update_fields=["settings"])
    items = [{"item": f"book-{n}", "title": f"Book {n}", "categories": [f"genre-{n % 12}"]}
             for n in range(args.items)]
    for start in range(0, len(items), 1000):
        upsert_items(tenant=tenant, items=items[start:start + 1000])
    for n in range(args.background):
        key = pseudonymize(tenant, f"reader-{n}")
        record_consents(tenant=tenant, subject_key=key, decisions={"personalization": True},
                        level="full", source="import")
        _insert_events(tenant.pk, key, args.per_subject, n)
    targets = ["warmup@example.com"] + [f"target-{n}@example.com" for n in range(args.runs)]
    for n, subject in enumerate(targets):
        key = pseudonymize(tenant, subject)
        # A consent history: grant, level, a change of mind, a re-grant.
        record_consents(tenant=tenant, subject_key=key, decisions={"personalization": True},
                        level="full", source="portal")
        record_consents(tenant=tenant, subject_key=key, decisions={"analytics": False},
                        source="portal")
        record_consents(tenant=tenant, subject_key=key, decisions={"analytics": True},
                        source="api")
        record_consents(tenant=tenant, subject_key=key, decisions={"personalization": True},
                        source="api")
        _insert_events(tenant.pk, key, args.events if n else 500, 10_000 + n)
    if args.filler:
        _insert_filler(tenant.pk, args.filler)
    print(f"  tenant, {args.items:,} items, {args.background:,} background subjects x "
          f"{args.per_subject} events, {args.filler:,} filler events, {len(targets)} targets "
          f"in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    version = train_model(tenant=tenant)
    print(f"  model v{version.number} ({version.status}) trained in "
          f"{time.perf_counter() - started:.1f} s")
    for subject in targets:
        key = pseudonymize(tenant, subject)
        if not artifacts_holding_subject(tenant, key):
            raise SystemExit(f"{subject} has no factor row in the model: nothing to measure")
    return tenant.pk, targets


def start_worker(args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "platform_site", "worker", "--concurrency=1",
         "--without-mingle", "--without-gossip", "--loglevel=INFO"],  # every queue of QUEUE
        cwd=ROOT, env=bench_env(args), stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.monotonic() + 60
    while b"ready." not in log.read_bytes():
        if time.monotonic() > deadline or worker.poll() is not None:
            raise SystemExit(f"the worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return worker


def erase(tenant_id: int, subject: str) -> dict[str, Any]:
    """File an erasure through the portal path and time verification -> completion. Step
    times are between consecutive checkpoints (each is written when its step commits)."""
    from apps.privacy.models import FulfilmentJob, PrivacyRequest
    from apps.privacy.services import Contact, create_privacy_request, verify_with_token
    from apps.privacy.services.verification import issue_challenge
    from apps.tenants.models import Tenant
    from apps.tenants.services import pseudonymize

    tenant = Tenant.objects.get(pk=tenant_id)
    pr = create_privacy_request(
        tenant=tenant, kind="erasure", regime="gdpr", channel="portal",
        subject_key=pseudonymize(tenant, subject), contact=Contact(subject, subject),
        origin="http://bench.invalid")
    token = issue_challenge(privacy_request=pr)  # what the emailed link carries
    started = time.perf_counter()
    verify_with_token(tenant=tenant, reference=pr.reference, token=token)
    while True:
        status = (PrivacyRequest.objects.for_tenant(tenant).filter(pk=pr.pk)
                  .values_list("status", flat=True)[0])
        if status == "completed":
            break
        if time.perf_counter() - started > 120:
            raise SystemExit(f"erasure {pr.pk} not completed after 120 s: {status}")
        time.sleep(0.005)
    wall = time.perf_counter() - started
    pr.refresh_from_db()
    job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
    steps = sorted(((datetime.fromisoformat(s["at"]), name)
                    for name, s in job.progress["steps"].items()))
    durations: dict[str, float] = {}
    previous = job.started_at
    for at, name in steps:
        label = "start + describe" if name == "describe" else name
        durations[label] = (at - previous).total_seconds()
        previous = at
    durations["verification (scan + verifiers)"] = pr.erasure_check["seconds"]
    durations["receipt + completion"] = ((pr.completed_at - previous).total_seconds()
                                         - pr.erasure_check["seconds"])
    return {
        "wall": wall,
        "worker": (pr.completed_at - pr.verified_at).total_seconds(),
        "queue": (job.started_at - pr.verified_at).total_seconds(),
        "steps": durations,
        "erased": {c["handler"]: c["count"] for c in pr.result["receipt"]["categories"]},
        "model_versions": pr.result["receipt"]["model_versions"],
        "subject_key": pr.subject_key,
    }


def rows_left(tenant_id: int, subject_key: str) -> tuple[int, list[str]]:
    from apps.core.subject_data import subject_bearing_models, subject_field_of
    from apps.privacy.services import check_subject
    from apps.privacy.services.erasure_check import exempt_columns
    from apps.tenants.models import Tenant

    left = 0
    for model in subject_bearing_models():
        field = subject_field_of(model)
        if (model._meta.db_table, model._meta.get_field(field).column) in exempt_columns():
            continue
        left += model.objects.for_tenant(tenant_id).filter(**{field: subject_key}).count()
    tenant = Tenant.objects.get(pk=tenant_id)
    return left, check_subject(tenant=tenant, subject_key=subject_key).hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--background", type=int, default=2000)
    parser.add_argument("--per-subject", type=int, default=40)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--filler", type=int, default=0,
                        help="extra events of unconsented subjects (a bigger database to scan)")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="discreet_bench_erasure")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    media = tempfile.TemporaryDirectory(prefix="discreet-bench-erasure-")
    args.media = media.name

    print(f"== setup (PostgreSQL {args.db}, Redis {args.redis}, queue {QUEUE})")
    recreate_database(args)
    tenant_id, targets = setup(args)
    log = ROOT / "bench" / "out" / "erasure-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = start_worker(args, log)
    try:
        print("== erasures (verification -> completed, real worker)")
        results = []
        for n, subject in enumerate(targets):
            result = erase(tenant_id, subject)
            label = "warm-up" if n == 0 else f"run {n}"
            print(f"  {label:8} wall {result['wall'] * 1000:7.0f} ms   worker "
                  f"{result['worker'] * 1000:7.0f} ms   queue wait "
                  f"{result['queue'] * 1000:5.0f} ms   events erased "
                  f"{result['erased'].get('events.event', 0):,}   model versions "
                  f"{', '.join(result['model_versions']) or '-'}")
            if n:
                results.append(result)
        print("== time per step (median of the measured runs, ms)")
        for name in results[0]["steps"]:
            median = statistics.median(r["steps"].get(name, 0.0) for r in results)
            print(f"  {name:34} {median * 1000:8.1f}")
        walls = [r["wall"] for r in results]
        print(f"== verification -> completed: median {statistics.median(walls) * 1000:.0f} ms, "
              f"max {max(walls) * 1000:.0f} ms over {len(walls)} runs (target < 2000 ms)")
        print("== left behind")
        for subject, result in zip(targets, [None, *results], strict=True):
            if result is None:
                continue
            left, hits = rows_left(tenant_id, result["subject_key"])
            print(f"  {subject}: {left} rows in subject tables, {len(hits)} verifier hits "
                  f"{hits or ''}")
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
        import redis

        from apps.core.queues import queue_names  # after common.setup_django

        redis.Redis.from_url(args.redis).delete(*queue_names(QUEUE))
        media.cleanup()


if __name__ == "__main__":
    main()
