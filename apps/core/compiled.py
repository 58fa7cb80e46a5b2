"""Hot ``values_list`` queries compiled once per process.

Building and compiling even a one-row indexed query through the ORM costs Django about a
millisecond on our 2-core hardware, more than PostgreSQL takes to answer it. A consent check
runs two such queries on every recommendation request (measured: 2.8 ms per check, of which
~0.9 ms was the database). :func:`run_compiled` compiles a query shape once, with sentinel
arguments, and afterwards binds the real arguments into the cached SQL, applying the same
field converters Django would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.sql.compiler import SQLCompiler


@dataclass(frozen=True)
class _Compiled:
    compiler: SQLCompiler
    sql: str
    params: tuple[Any, ...]
    slots: tuple[int | None, ...]   # per parameter: which argument it is, or None (constant)
    converters: dict[int, Any]


_compiled: dict[tuple[str, str], _Compiled] = {}
_lock = threading.Lock()


def _sentinel(position: int, example: Any) -> Any:
    """A value no real argument has, of the argument's type (it passes field preparation)."""
    if isinstance(example, bool) or not isinstance(example, int | str):
        raise TypeError("compiled queries take int and str arguments only")
    if isinstance(example, int):
        return -(2**62) + 7919 * position
    return f"\x1fcompiled-argument-{position}\x1f"


def _compile(build: Callable[..., QuerySet], args: tuple[Any, ...], alias: str) -> _Compiled:
    sentinels = tuple(_sentinel(n, a) for n, a in enumerate(args))
    compiler = build(*sentinels).query.get_compiler(alias)
    sql, params = compiler.as_sql()
    slots = tuple(sentinels.index(p) if p in sentinels else None for p in params)
    if sorted(s for s in slots if s is not None) != list(range(len(args))):
        raise ValueError("each argument must appear exactly once as a query parameter")
    fields = [selected[0] for selected in compiler.select[:compiler.col_count]]
    return _Compiled(compiler, sql, tuple(params), slots, compiler.get_converters(fields))


def run_compiled(name: str, build: Callable[..., QuerySet], *args: Any,
                 using: str = "default") -> list[tuple[Any, ...]]:
    """``list(build(*args))`` for a ``values_list`` queryset, compiled once per process and
    database. ``build`` must use each argument (an int or a str) exactly once, as a plain
    filter value, and nothing else about the query may vary between calls: ``name`` is the
    cache key of its shape."""
    key = (name, using)
    compiled = _compiled.get(key)
    if compiled is None:
        with _lock:
            compiled = _compiled.get(key) or _compile(build, args, using)
            _compiled[key] = compiled
    bound = [args[slot] if slot is not None else constant
             for constant, slot in zip(compiled.params, compiled.slots, strict=True)]
    with connections[using].cursor() as cursor:
        cursor.execute(compiled.sql, bound)
        rows = cursor.fetchall()
    if compiled.converters:
        rows = compiled.compiler.apply_converters(rows, compiled.converters)
    return [tuple(row) for row in rows]
