"""Serving benchmark: recommendations over HTTP (gunicorn, PostgreSQL, Redis) against a bare
Django view through the same server, and the in-process figures beside them.

    .venv/bin/python bench/serve.py [--ratings 5974625] [--reuse] [--seconds 10]
        [--clients 8,64] [--worker-class sync|gthread|gevent] [--threads 1] [--preload]
        [--profile] [--code PATH] [--label NAME] [--db discreet_bench_serve] [--tenant SLUG]
        [--skip-in-process] [--skip-http] [--in-process-requests 2000]

In one run:

1. (unless ``--reuse``) a fresh PostgreSQL database: a tenant, its catalog, consent and
   the goodbooks-10k-shaped synthetic ratings (``../shared/data/goodbooks-10k/
   synthesize.py``'s algorithm, numpy port in bench/ingest.py) loaded **through the
   services** (``upsert_items``, ``record_consents``, ``ingest_events``), ``--ratings`` of
   them (default: all 5,974,625 of the 53,424 readers; loading those takes ~30-40 min on the
   2-core box), then the platform trains its model (``train_model``, ALS, no search);
2. in-process figures (this process, Django on the same code): the service calls after an
   untimed API-key authentication, as ``bench/train.py`` measures them, and the whole
   request through Django's handler (middleware, DRF, view) with ``django.test.Client``;
3. starts gunicorn (``--workers`` 2, ``--worker-class``, production settings, DEBUG off,
   Redis cache for the throttle counters) on the code in ``--code`` (default: this
   checkout; point it at a ``git worktree`` of another commit to measure "before" on the
   same database), and drives each route from 8 and from 64 concurrent clients for
   ``--seconds``: user recommendations, session recommendations, similar items, and a bare
   Django view returning a constant JSON body (``bench/serve_urls.py``: the floor);
4. prints requests/s and p50 / p99 / p99.9 per route and client count, the server's CPU per
   request (gunicorn master and workers, from /proc: unlike the latencies, other jobs on the
   box do not add to it), the ratio of each route's requests/s to the floor's, and the CPU
   the load generator itself used.

The load generator is one separate process (asyncio, raw HTTP/1.1 on keep-alive
connections, reconnecting when the server closes them, as sync workers do after every
response): cheap per request, so it leaves the two cores to the server as far as it can.
``--profile`` runs every gunicorn worker under cProfile (``bench/serve_gunicorn.py``) and
prints where the workers' time went; profiled figures are not the benchmark's.

Nothing is asserted: figures go to bench/README.md ("Serving at web speed").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
PORT = 8771
FULL_RATINGS = 5_974_625
MEAN_RATINGS_PER_READER = 111.87  # synthesize.py's per-user mean


def bench_env(args: argparse.Namespace, settings: str) -> dict[str, str]:
    """The environment of every process here: one database, Redis for cache and broker."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DISCREET_MASTER_KEY": "bench-only-master-key-0123456789abcdef",
        "DATABASE_URL": f"{args.pg}/{args.db}",
        "CACHE_URL": f"rediscache://{args.redis}/{args.redis_db}",
        "CELERY_BROKER_URL": f"redis://{args.redis}/{args.redis_db}",
        "CELERY_TASK_DEFAULT_QUEUE": "discreet-bench-serve",
        "EMAIL_URL": "discard://",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "API_KEY_RATE": "100000000/min",  # counted (the atomic counter runs), never reached
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(args.code), str(BENCH)]),
        # Model artifacts stay in this checkout's var/, whichever checkout serves them.
        "MEDIA_ROOT": str(ROOT / "var" / "media"),
    }


def setup_django(args: argparse.Namespace, settings: str) -> None:
    os.environ.update(bench_env(args, settings))
    os.chdir(args.code)  # Celery puts the working directory first on sys.path
    sys.path[:0] = [str(args.code), str(BENCH)]
    import django

    django.setup()


# --- 1. Data and model ---------------------------------------------------------------------


def _consent_worker(args: argparse.Namespace, tenant_id: int, subjects: list[str]) -> int:
    setup_django(args, "platform_site.settings.test")
    from apps.consent.services import record_consents
    from apps.tenants.models import Tenant
    from apps.tenants.services import pseudonymize_many

    tenant = Tenant.objects.get(pk=tenant_id)
    keys = pseudonymize_many(tenant, subjects)
    for raw in subjects:
        record_consents(tenant=tenant, subject_key=keys[raw],
                        decisions={"personalization": True}, level="full", source="import")
    return len(subjects)


def _events_worker(args: argparse.Namespace, tenant_id: int, part: int, parts: int) -> int:
    """Ingest every ``parts``-th reader's ratings (so a subject's events stay in one
    process) through ``ingest_events``, batches of 1,000."""
    setup_django(args, "platform_site.settings.test")
    from datetime import timedelta

    from django.db import connection

    from apps.events.services import ingest_events
    from apps.tenants.models import Tenant

    users, books, stars = ratings(args)
    mine = (users % parts) == part
    users, books, stars = users[mine], books[mine], stars[mine]
    tenant = Tenant.objects.get(pk=tenant_id)
    start = datetime.now(UTC) - timedelta(days=300)
    accepted = maintained = 0
    for i in range(0, len(users), 1000):
        batch = [{"event_id": f"r-{part}-{i + j}", "subject": f"reader-{int(u)}",
                  "item": f"book-{int(b)}", "type": "rating", "value": float(s),
                  "occurred_at": (start + timedelta(seconds=(i + j) * 4)).isoformat()}
                 for j, (u, b, s) in enumerate(zip(users[i:i + 1000].tolist(),
                                                   books[i:i + 1000].tolist(),
                                                   stars[i:i + 1000].tolist(), strict=True))]
        accepted += ingest_events(tenant=tenant, events=batch).accepted
        if part == 0 and accepted - maintained >= max(100_000, maintained // 4):
            with connection.cursor() as cursor:  # what autovacuum would do (off on this box)
                cursor.execute("VACUUM ANALYZE events_event")
            maintained = accepted
            print(f"  events: {accepted * parts:,} (estimated) ...", flush=True)
    return accepted


def ratings(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``--ratings`` ratings, whole readers only (enough readers are synthesized)."""
    if "GOODBOOKS_DIR" not in os.environ:  # ../shared beside the checkout, or a worktree's
        for up in (ROOT.parent, ROOT.parent.parent):
            if (up / "shared" / "data" / "goodbooks-10k").is_dir():
                os.environ["GOODBOOKS_DIR"] = str(up / "shared" / "data" / "goodbooks-10k")
                break
    import ingest  # bench/ingest.py: synthesize.py's algorithm, cached in bench/out

    readers = min(53_424, math.ceil(args.ratings / MEAN_RATINGS_PER_READER * 1.02))
    users, books, stars = ingest.ratings(readers)
    order = np.argsort(users, kind="stable")
    users, books, stars = users[order], books[order], stars[order]
    if args.ratings < len(users):
        last = users[args.ratings - 1]
        keep = users <= last
        users, books, stars = users[keep], books[keep], stars[keep]
    return users, books, stars


def load_and_train(args: argparse.Namespace) -> None:
    """A fresh database with the tenant, its data (through the services) and a model."""
    import psycopg

    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],  # noqa: S603
                   cwd=args.code, env=bench_env(args, "platform_site.settings.test"),
                   check=True)
    users, books, _ = ratings(args)
    readers = sorted(set(users.tolist()))
    print(f"data: {len(users):,} ratings of {len(readers):,} readers, "
          f"{len(set(books.tolist())):,} books", flush=True)
    setup_django(args, "platform_site.settings.test")
    from django.db import connections

    from apps.events.services import upsert_items
    from apps.retention.services import set_retention_policy
    from apps.tenants.services import create_tenant

    started = time.perf_counter()
    tenant = create_tenant(slug="bench-serve", name="Bench serving")
    tenant.settings = {"event_history_cap": 100_000, "event_retention_days": 36500,
                       "model_search_seconds": 0, "model_algorithms": ["als"],
                       "model_retrain_debounce_seconds": 10**6}
    tenant.save(update_fields=["settings"])
    set_retention_policy(tenant=tenant, category="events", days=3650)
    items = [{"item": f"book-{n}", "title": f"Book {n}", "categories": ["books"]}
             for n in range(1, 10_001)]
    for i in range(0, len(items), 1000):
        upsert_items(tenant=tenant, items=items[i:i + 1000])
    connections.close_all()
    ctx = mp.get_context("spawn")
    procs = args.load_processes
    subjects = [f"reader-{u}" for u in readers]
    with ctx.Pool(procs) as pool:
        done = sum(pool.starmap(_consent_worker, [(args, tenant.pk, subjects[k::procs])
                                                  for k in range(procs)]))
    print(f"consent for {done:,} readers in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    with ctx.Pool(procs) as pool:
        accepted = sum(pool.starmap(_events_worker, [(args, tenant.pk, k, procs)
                                                     for k in range(procs)]))
    took = time.perf_counter() - started
    print(f"{accepted:,} events in {took:.0f} s ({accepted / took:,.0f}/s)", flush=True)
    from apps.modeling.services import train_model

    with connections["default"].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    started = time.perf_counter()
    version = train_model(tenant=tenant)
    print(f"trained {version.algorithm} v{version.number} ({version.status}) in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    connections.close_all()


# --- 2. In process ----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def in_process(args: argparse.Namespace, raw_key: str, readers: list[int]) -> dict[str, Any]:
    """p50/p99 (ms) of the service calls after an untimed authentication, and of the whole
    request through Django's handler (``django.test.Client``: middleware, DRF, view)."""
    from django.test import Client

    from apps.modeling.services import (
        recommend_for_session,
        recommend_for_subject,
        similar_items,
    )
    from apps.tenants.services import authenticate_api_key, pseudonymize

    rng = random.Random(11)
    n = args.in_process_requests
    subjects = [f"reader-{rng.choice(readers)}" for _ in range(n)]
    sessions = [[f"book-{rng.randint(1, 2000)}" for _ in range(5)] for _ in range(n)]
    probes = [f"book-{rng.randint(1, 2000)}" for _ in range(n)]

    def timed(call: Any, inputs: list[Any], prepare: Any = None) -> dict[str, float]:
        """Wall and CPU time (this process's, so other jobs on the box count only in the
        wall figure) of each call after 50 warm-up calls."""
        times, cpu = [], []
        for index, value in enumerate(inputs[:50] + inputs):
            ready = prepare() if prepare else None
            c, t = time.process_time(), time.perf_counter()
            call(ready, value)
            if index >= 50 or len(inputs) <= 50:
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
        return {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "n": len(times),
                "cpu_mean_ms": statistics.fmean(cpu), "cpu_p99_ms": pct(cpu, 99)}

    def tenant() -> Any:
        return authenticate_api_key(raw_key).tenant

    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    figures = {
        "user (service)": timed(lambda t, s: recommend_for_subject(
            tenant=t, subject_key=pseudonymize(t, s), n=10), subjects, tenant),
        "session (service)": timed(lambda t, s: recommend_for_session(
            tenant=t, recent_items=s, n=10), sessions, tenant),
        "similar (service)": timed(lambda t, i: similar_items(tenant=t, item=i, n=10),
                                   probes, tenant),
        "user (Django handler)": timed(lambda _, s: _ok(client.get(
            "/api/v1/recommendations", {"subject": s, "n": 10})), subjects),
        "session (Django handler)": timed(lambda _, s: _ok(client.post(
            "/api/v1/recommendations/session", {"recent_items": s, "n": 10},
            content_type="application/json")), sessions),
        "similar (Django handler)": timed(lambda _, i: _ok(client.get(
            f"/api/v1/items/{i}/similar", {"n": 10})), probes),
    }
    for name, f in figures.items():
        print(f"in process {name:26s} p50 {f['p50_ms']:6.2f} ms  p99 {f['p99_ms']:6.2f} ms "
              f"CPU mean {f['cpu_mean_ms']:6.2f} ms p99 {f['cpu_p99_ms']:6.2f} ms "
              f"(n={f['n']}, load {os.getloadavg()[0]:.1f})", flush=True)
    return figures


def _ok(response: Any) -> None:
    if response.status_code != 200:
        raise SystemExit(f"unexpected {response.status_code}: {response.content[:300]!r}")


# --- 3. HTTP -------------------------------------------------------------------------------------


def gunicorn_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "gunicorn", "serve_wsgi:application",
            "--chdir", str(args.code), "--workers", "2", "--bind", f"127.0.0.1:{PORT}",
            "--worker-class", args.worker_class, "--log-level", "warning",
            "--timeout", "120", "--backlog", "2048", "--keep-alive", str(args.keep_alive)]
    if args.threads > 1 or args.worker_class == "gthread":
        argv += ["--threads", str(args.threads)]
    if args.worker_connections:
        argv += ["--worker-connections", str(args.worker_connections)]
    if args.preload:
        argv.append("--preload")
    if args.profile:
        argv += ["--config", str(BENCH / "serve_gunicorn.py")]
    return argv


def start_gunicorn(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    OUT.mkdir(exist_ok=True)
    env = bench_env(args, "serve_settings")
    if args.profile:
        env["SERVE_PROFILE_DIR"] = str(OUT / f"profile-{args.label}")
        Path(env["SERVE_PROFILE_DIR"]).mkdir(parents=True, exist_ok=True)
        for old in Path(env["SERVE_PROFILE_DIR"]).glob("worker-*"):
            old.unlink()
    log = (OUT / f"serve-gunicorn-{args.label}.log").open("wb")
    process = subprocess.Popen(gunicorn_argv(args), env=env, stdout=log,  # noqa: S603
                               stderr=subprocess.STDOUT, start_new_session=True)
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.3)
    stop(process)
    raise SystemExit(f"gunicorn did not become healthy; see {log.name}")


def stop(process: subprocess.Popen[bytes]) -> None:
    from ingest import stop as stop_gunicorn  # bench/ingest.py: TERM, then KILL after 30 s

    stop_gunicorn(process)


def requests_for(route: str, raw_key: str, readers: list[int], count: int = 500) -> list[bytes]:
    """Ready-made request bytes for a route (the generator only sends them)."""
    rng = random.Random(hash(route) & 0xFFFF)
    head = (f"Host: 127.0.0.1:{PORT}\r\nAuthorization: Bearer {raw_key}\r\n"
            "Accept: application/json\r\n")
    out = []
    for _ in range(count):
        if route == "user":
            line = f"GET /api/v1/recommendations?subject=reader-{rng.choice(readers)}&n=10"
            out.append(f"{line} HTTP/1.1\r\n{head}\r\n".encode())
        elif route == "similar":
            out.append(f"GET /api/v1/items/book-{rng.randint(1, 2000)}/similar?n=10 HTTP/1.1"
                       f"\r\n{head}\r\n".encode())
        elif route == "session":
            body = json.dumps({"recent_items": [f"book-{rng.randint(1, 2000)}"
                                                for _ in range(5)], "n": 10}).encode()
            out.append(f"POST /api/v1/recommendations/session HTTP/1.1\r\n{head}"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                       f"\r\n".encode() + body)
        else:  # the floor: a bare Django view, constant JSON (bench/serve_urls.py)
            out.append(f"GET /api/v1/bench-floor HTTP/1.1\r\n{head}\r\n".encode())
    return out


async def _client(requests: list[bytes], deadline: float, seed: int,
                  times: list[float], errors: list[str]) -> None:
    rng = random.Random(seed)
    reader = writer = None
    while time.perf_counter() < deadline:
        payload = requests[rng.randrange(len(requests))]
        t = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"content-length:")
            length = int(lower[at + 15:lower.find(b"\r\n", at)]) if at >= 0 else 0
            await reader.readexactly(length)
            elapsed = time.perf_counter() - t
            if b"connection: close" in lower:
                writer.close()
                reader = writer = None
        except (ConnectionError, asyncio.IncompleteReadError):
            if writer is not None:
                writer.close()
            reader = writer = None
            errors.append("connection")
            continue
        if status != 200:
            errors.append(str(status))
            continue
        times.append(elapsed * 1000)
    if writer is not None:
        writer.close()


def load_process(requests: list[bytes], clients: int, seconds: float, warmup: float,
                 result: Any) -> None:
    """One generator process: ``clients`` connections, each sending its next request when
    the previous answer is in (closed loop), for ``warmup`` (not counted) + ``seconds``."""
    async def run() -> tuple[list[float], list[str], float, float, int]:
        warm_times: list[float] = []
        warm_end = time.perf_counter() + warmup
        await asyncio.gather(*(_client(requests, warm_end, 1000 + c, warm_times, [])
                               for c in range(clients)))
        times: list[float] = []
        errors: list[str] = []
        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(_client(requests, start + seconds, c, times, errors)
                               for c in range(clients)))
        wall = time.perf_counter() - start
        return times, errors, wall, time.process_time() - cpu, len(warm_times)

    times, errors, wall, cpu, warm = asyncio.run(run())
    result.put({"times": times, "errors": errors, "wall": wall, "cpu": cpu, "warm": warm})


def server_cpu_seconds(master: int) -> float:
    """User + system CPU seconds of the gunicorn master and its workers so far (from
    /proc; a worker's CPU is counted while it lives). Other jobs on the box do not count
    here, unlike in the latencies."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == master or ppid == master:
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def drive(requests: list[bytes], clients: int, args: argparse.Namespace,
          server: int | None = None) -> dict[str, Any]:
    """One route's run; with ``server`` (the master's pid) also the server's CPU per
    request, warm-up included (the generator's count of warm-up requests)."""
    ctx = mp.get_context("fork")
    result = ctx.Queue()
    proc = ctx.Process(target=load_process,
                       args=(requests, clients, args.seconds, args.warmup, result))
    load_before = os.getloadavg()[0]
    cpu_before = server_cpu_seconds(server) if server else 0.0
    proc.start()
    out = result.get()
    proc.join()
    cpu = server_cpu_seconds(server) - cpu_before if server else float("nan")
    times = out["times"]
    return {"server_cpu_ms_per_request": cpu * 1000 / max(1, len(times) + out["warm"]),
            "requests_per_s": len(times) / out["wall"], "n": len(times),
            "p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "p999_ms": pct(times, 99.9),
            "mean_ms": statistics.fmean(times) if times else float("nan"),
            "errors": len(out["errors"]), "error_kinds": sorted(set(out["errors"]))[:5],
            "generator_cpu_share": out["cpu"] / out["wall"], "load_average": load_before,
            "warmup_n": out["warm"]}


def http(args: argparse.Namespace, raw_key: str, readers: list[int]) -> dict[str, Any]:
    server = start_gunicorn(args)
    results: dict[str, Any] = {}
    try:
        routes = {r: requests_for(r, raw_key, readers) for r in args.routes}
        for clients in args.clients:
            for route in args.routes:
                f = drive(routes[route], clients, args, server.pid)
                results[f"{route}@{clients}"] = f
                print(f"HTTP {route:8s} {clients:3d} clients: {f['requests_per_s']:7.0f} req/s  "
                      f"p50 {f['p50_ms']:6.1f}  p99 {f['p99_ms']:6.1f}  p99.9 "
                      f"{f['p999_ms']:6.1f} ms  server CPU "
                      f"{f['server_cpu_ms_per_request']:5.2f} ms/request  "
                      f"errors {f['errors']} {f['error_kinds']}  "
                      f"generator CPU {f['generator_cpu_share']:.0%}  load "
                      f"{f['load_average']:.1f}", flush=True)
            floor = results.get(f"floor@{clients}")
            if floor:
                for route in args.routes:
                    if route != "floor":
                        ratio = results[f"{route}@{clients}"]["requests_per_s"] / floor[
                            "requests_per_s"]
                        results[f"{route}@{clients}"]["ratio_to_floor"] = ratio
                        print(f"  {route} / floor at {clients} clients: {ratio:.2f}", flush=True)
    finally:
        stop(server)
    return results


#: (label, file suffix, function) of the profile breakdown: CPU ms per request, inclusive.
BREAKDOWN = [
    ("gunicorn: one request, all of it", "gunicorn/workers/sync.py", "handle"),
    ("gunicorn: one request, all of it", "gunicorn/workers/gthread.py", "handle"),
    ("  gunicorn: read + parse the request", "gunicorn/http/parser.py", "__next__"),
    ("  Django WSGIHandler (middleware + view)", "django/core/handlers/wsgi.py", "__call__"),
    ("    URL resolution", "django/urls/resolvers.py", "resolve"),
    ("    view (DRF dispatch, everything below)", "rest_framework/views.py", "dispatch"),
    ("      DRF Request wrapper", "rest_framework/views.py", "initialize_request"),
    ("      content negotiation", "rest_framework/views.py", "perform_content_negotiation"),
    ("      authentication (API key)", "rest_framework/views.py", "perform_authentication"),
    ("        key lookup (SQL + objects)", "apps/core/db.py", "first"),
    ("      permissions (scopes)", "rest_framework/views.py", "check_permissions"),
    ("      throttle (atomic counter)", "rest_framework/views.py", "check_throttles"),
    ("      handler: recommendations view", "apps/modeling/apis.py", "get"),
    ("      handler: session view", "apps/modeling/apis.py", "post"),
    ("        parameters (fast reader or serializer)", "apps/core/params.py",
     "validated_params"),
    ("        input serializer", "rest_framework/serializers.py", "is_valid"),
    ("        pseudonymize", "apps/tenants/services.py", "pseudonymize"),
    ("        recommend_for_subject", "apps/modeling/services/serving.py",
     "recommend_for_subject"),
    ("          consent check", "apps/consent/selectors.py", "get_subject_consent_views"),
    ("          current model", "apps/modeling/services/serving.py", "current_model"),
    ("      finalize + render", "rest_framework/views.py", "finalize_response"),
    ("      exception handler", "rest_framework/views.py", "handle_exception"),
    ("    RLS setting kept in step", "apps/tenants/postgresql/base.py",
     "_keep_tenant_setting"),
    ("    all SQL statements (client side)", "django/db/backends/utils.py", "execute"),
    ("    Redis calls", "redis/client.py", "execute_command"),
    ("    CSP header", "csp/middleware.py", "process_response"),
    ("    CSP header (built once)", "apps/core/csp_policy.py", "process_response"),
    ("  gunicorn: write the response", "gunicorn/http/wsgi.py", "write"),
    ("  gunicorn: access/close", "gunicorn/http/wsgi.py", "close"),
]


def profile_breakdown(directory: Path, requests: int) -> list[tuple[str, float, int]]:
    """CPU ms per request of each :data:`BREAKDOWN` entry over every worker's profile."""
    import pstats

    files = sorted(directory.glob("worker-*.prof"))
    if not files:
        print("no worker profiles written", flush=True)
        return []
    stats = pstats.Stats(*map(str, files))
    rows = []
    for label, suffix, function in BREAKDOWN:
        total, calls = 0.0, 0
        for (filename, _, name), (_, ncalls, _, cumulative, _) in stats.stats.items():
            if name == function and filename.endswith(suffix):
                total += cumulative
                calls += ncalls
        if calls:
            rows.append((label, total * 1000 / requests, calls))
            print(f"{label:48s} {total * 1000 / requests:7.3f} ms/request  ({calls} calls)",
                  flush=True)
    stats.sort_stats("tottime").print_stats(25)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=FULL_RATINGS)
    parser.add_argument("--reuse", action="store_true", help="keep --db as an earlier run left it")
    parser.add_argument("--setup-only", action="store_true")
    parser.add_argument("--db", default="discreet_bench_serve")
    parser.add_argument("--tenant", default="bench-serve",
                        help="with --reuse: the tenant to serve, e.g. bench-goodbooks in the "
                             "database bench/train.py loaded with the whole 6M set")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="the checkout whose code serves (default: this one)")
    parser.add_argument("--label", default="now")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")],
                        default=[8, 64])
    parser.add_argument("--routes", type=lambda s: s.split(","),
                        default=["user", "session", "similar", "floor"])
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker-connections", type=int, default=0)
    parser.add_argument("--keep-alive", type=int, default=5)
    parser.add_argument("--preload", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--in-process-requests", type=int, default=2000)
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-http", action="store_true",
                        help="the in-process figures only (no gunicorn)")
    args = parser.parse_args()
    args.code = args.code.resolve()
    if args.tenant != "bench-serve" and not args.reuse:
        parser.error("--tenant names a tenant loaded earlier: use it with --reuse")
    if not args.reuse:
        load_and_train(args)
        if args.setup_only:
            return
    setup_django(args, "serve_settings")
    from apps.modeling.services import current_model
    from apps.tenants.models import Scope, Tenant
    from apps.tenants.services import create_api_key

    tenant = Tenant.objects.get(slug=args.tenant)
    _, raw_key = create_api_key(tenant=tenant, name=f"bench {args.label}",
                                scopes=[Scope.RECOMMENDATIONS_READ])
    model = current_model(tenant)
    if model is None:
        raise SystemExit("no active model: run without --reuse first")
    users, _, _ = ratings(args)
    readers = sorted(set(users.tolist()))
    print(f"code {args.code} ({args.label}); model v{model.number}; {len(readers):,} "
          f"readers; gunicorn "
          f"{' '.join(gunicorn_argv(args)[3:])}", flush=True)
    results: dict[str, Any] = {"label": args.label, "code": str(args.code),
                               "gunicorn": gunicorn_argv(args)[3:],
                               "started": datetime.now(UTC).isoformat()}
    if not args.skip_in_process:
        results["in_process"] = in_process(args, raw_key, readers)
    from django.db import connections

    connections.close_all()
    if not args.skip_http:
        results["http"] = http(args, raw_key, readers)
    if args.profile and not args.skip_http:
        directory = OUT / f"profile-{args.label}"
        served = sum(int(p.read_text()) for p in directory.glob("worker-*.count"))
        print(f"\nprofile of the gunicorn workers (CPU time, cProfile; {served} requests "
              "after each worker's first 20):", flush=True)
        results["profile"] = profile_breakdown(directory, served)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"serve-{args.label}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
