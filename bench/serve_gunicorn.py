"""gunicorn hooks for ``bench/serve.py --profile``: each worker runs under cProfile from
its 20th request (its model and connections are loaded by then: the steady state) to its
exit, and writes ``<SERVE_PROFILE_DIR>/worker-<pid>.prof`` with the number of requests
profiled in ``worker-<pid>.count``. The clock is the process's CPU time (the box is
shared: wall time would mostly measure the other jobs); time spent waiting for
PostgreSQL, Redis or the client therefore does not show."""

import cProfile
import os
import time

WARM_REQUESTS = 20
_state = {"served": 0, "profile": None}


def post_request(worker, req, environ, resp):
    _state["served"] += 1
    if _state["served"] == WARM_REQUESTS:
        _state["profile"] = cProfile.Profile(time.process_time)
        _state["profile"].enable()


def worker_exit(server, worker):
    profile = _state["profile"]
    if profile is not None:
        profile.disable()
        base = os.path.join(os.environ["SERVE_PROFILE_DIR"], f"worker-{os.getpid()}")
        profile.dump_stats(base + ".prof")
        with open(base + ".count", "w") as handle:
            handle.write(str(_state["served"] - WARM_REQUESTS))
