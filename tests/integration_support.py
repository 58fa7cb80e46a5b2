"""Tests marked ``integration`` run against a real Celery worker process.

The worker is started once per session against the *test* database that pytest-django
created (PostgreSQL only: an in-memory SQLite database cannot be shared with another
process) and a private queue on the real broker, and stopped at the end. On the embedded
default (SQLite, in-memory broker) these tests are skipped with the reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def real_backends_available() -> bool:
    return (
        connection.vendor == "postgresql"
        and not settings.CELERY_BROKER_URL.startswith(("memory://", "filesystem://"))
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.django_db(transaction=True))


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "platform_site", "worker",
             "--loglevel=INFO", "--concurrency=1", "--without-mingle", "--without-gossip"],
            # No -Q: the worker consumes every queue of this run (apps.core.queues).
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: b"ready." in self.log_path.read_bytes(), timeout=60)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def child_pids(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
                             capture_output=True, text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker,
                          tmp_path_factory) -> Iterator[WorkerProcess]:
    if not real_backends_available():
        reason = "needs PostgreSQL + a real broker: set DATABASE_URL and CELERY_BROKER_URL"
        if os.environ.get("DISCREET_REQUIRE_INTEGRATION"):  # CI's second run may not skip
            pytest.fail(reason)
        pytest.skip(reason)
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    # .ci/run gives each run a private queue (CELERY_TASK_DEFAULT_QUEUE) on the shared broker.
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "platform_site.settings.worker_test",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
                        f"/{db['NAME']}",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "PYTHONUNBUFFERED": "1",
    }
    worker = WorkerProcess(env, tmp_path_factory.mktemp("worker") / "worker.log")
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def live_worker(celery_worker_process: WorkerProcess, transactional_db) -> Iterator[WorkerProcess]:
    """Tasks go to the real worker for the duration of the test (not eager)."""
    from platform_site.celery import app

    # With the CELERY_ settings namespace, Celery reads the prefixed key first.
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    assert not app.conf.task_always_eager
    if celery_worker_process.process is None or celery_worker_process.process.poll() is not None:
        celery_worker_process.start()
    try:
        yield celery_worker_process
    finally:
        app.conf.CELERY_TASK_ALWAYS_EAGER = True
