"""gunicorn hooks for ``bench/serve.py --profile``: each worker runs under cProfile from
its start to its exit and writes ``<SERVE_PROFILE_DIR>/worker-<pid>.prof``."""

import cProfile
import os

_profiles: dict[int, cProfile.Profile] = {}


def post_worker_init(worker):
    profile = cProfile.Profile()
    _profiles[os.getpid()] = profile
    profile.enable()


def worker_exit(server, worker):
    profile = _profiles.pop(os.getpid(), None)
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.path.join(os.environ["SERVE_PROFILE_DIR"],
                                        f"worker-{os.getpid()}.prof"))
