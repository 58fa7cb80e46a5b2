"""BLAS single-threaded in every process (implicit's advice; DESIGN "Rules").

``threadpoolctl`` limits only the libraries already loaded, and SciPy brings its own
OpenBLAS, loaded when SciPy is first imported (inside functions here). So the environment
variables are set at start-up too (libraries loaded later read them), and
``ensure_single_threaded_blas`` runs again where SciPy/implicit have just been imported.
"""

from __future__ import annotations

import os

_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def pin_blas_threads() -> None:
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    ensure_single_threaded_blas()


def ensure_single_threaded_blas() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    if any(lib.get("user_api") == "blas" and lib.get("num_threads", 1) > 1
           for lib in threadpool_info()):
        threadpool_limits(1, "blas")
