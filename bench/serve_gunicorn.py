"""gunicorn hooks for ``bench/serve.py --profile``: each worker runs under cProfile from
its start to its exit and writes ``<SERVE_PROFILE_DIR>/worker-<pid>.prof``. The clock is
the process's CPU time (the box is shared: wall time would mostly measure the other jobs);
time spent waiting for PostgreSQL, Redis or the client therefore does not show."""

import cProfile
import os
import time

_profiles: dict[int, cProfile.Profile] = {}


def post_worker_init(worker):
    profile = cProfile.Profile(time.process_time)
    _profiles[os.getpid()] = profile
    profile.enable()


def worker_exit(server, worker):
    profile = _profiles.pop(os.getpid(), None)
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.path.join(os.environ["SERVE_PROFILE_DIR"],
                                        f"worker-{os.getpid()}.prof"))
