"""Loaded only by the worker of the privacy integration tests (tests/privacy/worker_settings).

Declares ``zz_test.linger``, a subject-data store between the events (order 100) and the
consent ledger (880). On its first run it writes ``PRIVACY_TEST_MARKER_DIR/started`` and
sleeps, so the test can kill the worker there; once that file exists it does nothing. Each
call is logged to ``calls`` (one line per call), so the test can count them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from apps.core.subject_data import declare
from tests.subject_data import throwaway_store


def _linger(tenant, subject_key: str) -> int:
    marker_dir = Path(os.environ.get("PRIVACY_TEST_MARKER_DIR", "/nonexistent"))
    if not marker_dir.is_dir():
        return 0
    with (marker_dir / "calls").open("a") as calls:
        calls.write(f"{os.getpid()}\n")
    started = marker_dir / "started"
    if started.exists():
        return 0
    started.write_text(str(os.getpid()))
    time.sleep(120)  # killed here
    return 0


declare(throwaway_store("zz_test.linger", category="test step that lingers", erase=_linger,
                        order=150))
