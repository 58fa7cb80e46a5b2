"""Training's large arrays and glibc's allocator (issue 15; bench/README.md, "Training end
to end").

glibc serves every allocation above its mmap threshold (32 MiB at most) with a mapping of
its own and unmaps it when it is freed. The training snapshot and the fits build dozens of
temporaries of millions of entries each (48 MB per 6M int64 values), so each one was
faulted in again page by page by the kernel: at 6M events that was about a quarter of the
snapshot's time, and it varied from round to round with what the kernel had at hand.
:func:`reuse_freed_memory`, called where a training starts, makes this process serve them
from its heap and keep up to :data:`KEPT_BYTES` of freed heap for the next ones, so
freed arrays are reused instead of faulted in again.

The price: the process (a training worker, or the web process of the embedded setup, which
trains in-process) keeps that much freed memory besides what it still uses (README,
"Background work"). Where the C library is not glibc (no ``mallopt``), nothing changes.
"""

from __future__ import annotations

import ctypes
import sys

#: Freed heap memory the process keeps for reuse instead of returning it to the kernel.
KEPT_BYTES = 1 << 30

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = False


def reuse_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed ones (see the module
    docstring), once per process. ``True`` when in force."""
    global _applied
    if _applied or not sys.platform.startswith("linux"):
        return _applied
    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process's C library
    except (OSError, AttributeError):  # not glibc
        return False
    _applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, KEPT_BYTES) == 1
    return _applied
