"""The few hot queries that send a batch (of subject keys, of events) as one array.

Django's psycopg 3 backend binds parameters on the client: a list of 500 subject keys
becomes a 35 kB array literal that PostgreSQL parses for every query. And whatever the
binding, ``key = ANY(array of 500)`` on a table of tens of thousands of rows is planned as
a sequential scan that hashes every row's key (the default ``random_page_cost`` prices 500
index probes above reading the table). :func:`fetch_rows_matching` sends the keys as one
bound array and joins it ``LATERAL``, which makes each key one probe of the unique index
(measured on one ingestion batch against 45k consent subjects: 7-12 ms -> 2-4 ms per query).
Everything else keeps Django's default, except the few one-row lookups of every API
request, which :class:`PrecompiledLookup` compiles once per process and
:func:`hot_statement_cursor` lets PostgreSQL prepare once per connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL


def server_side_binding_available(using: BaseDatabaseWrapper | None = None) -> bool:
    """PostgreSQL through psycopg 3 (psycopg2 has no server-side binding)."""
    using = using or connection
    return (using.vendor == "postgresql"
            and getattr(using.Database, "__name__", "") == "psycopg")


@contextmanager
def binding_cursor(*, binary_results: bool = False, using: BaseDatabaseWrapper | None = None
                   ) -> Iterator[CursorWrapper]:
    """A psycopg 3 server-side-binding cursor on Django's connection, wrapped like Django's
    own (counted by ``CaptureQueriesContext``, errors translated to ``django.db`` ones).
    ``binary_results`` asks for rows in binary format (timestamps arrive as numbers, not as
    text to parse). Only call it when :func:`server_side_binding_available`."""
    import psycopg

    using = using or connection
    using.ensure_connection()
    raw = psycopg.Cursor(using.connection)
    if binary_results:
        raw.format = psycopg.pq.Format.BINARY
    cursor = using.make_debug_cursor(raw) if using.queries_logged else using.make_cursor(raw)
    try:
        yield cursor
    finally:
        cursor.close()


@contextmanager
def hot_statement_cursor(using: BaseDatabaseWrapper | None = None, *,
                         binary_results: bool = False) -> Iterator[CursorWrapper]:
    """The cursor for a statement that runs on every API request (the key lookup, the
    consent check). On psycopg 3 it binds server-side, so psycopg prepares the statement on
    the connection after ``prepare_threshold`` (5) runs and PostgreSQL stops parsing and
    planning it: two thirds of PostgreSQL's CPU for these small statements (issue 18,
    bench/README.md). Rows come as text, as from Django's own cursor (JSON columns stay
    strings for the ORM's converters), or in binary with ``binary_results`` (for columns
    whose binary loaders give what the text ones do: no JSON). Elsewhere, Django's
    cursor."""
    using = using or connection
    if server_side_binding_available(using):
        with binding_cursor(using=using, binary_results=binary_results) as cursor:
            yield cursor
    else:
        with using.cursor() as cursor:
            yield cursor


#: Up to this many values a plain ``IN`` is planned as index probes anyway, and is cheaper
#: than the ``LATERAL`` statement (one subject's consent check: ~0.8 ms instead of ~1.1 ms).
FEW = 16


def fetch_rows_matching(rows: QuerySet[Any], *, field: str, values: Sequence[Any]
                        ) -> list[tuple[Any, ...]]:
    """The tuples of the ``values_list`` queryset ``rows`` whose ``field`` is one of
    ``values`` (distinct), i.e. ``rows.filter(field__in=values)``.

    On PostgreSQL, beyond a few values, they travel as one bound array that the query joins
    ``LATERAL``: one index probe per value, whatever the size of the table. Only for columns
    PostgreSQL already returns as their Python values (text, integers, booleans,
    ``timestamptz``): no field converter runs on that path.
    """
    if not values:
        return []
    if len(values) <= FEW or not server_side_binding_available():
        return list(rows.filter(**{f"{field}__in": list(values)}))
    array_type = rows.model._meta.get_field(field).db_type(connection)
    probe = rows.filter(**{field: RawSQL("batch.value", ())})
    sql, params = probe.query.sql_with_params()
    # OFFSET 0 keeps the planner from flattening the subquery into a hash join (which
    # would scan the whole table again): each value becomes one index probe.
    statement = (f"SELECT probe.* FROM unnest(%b::{array_type}[]) AS batch(value) "  # noqa: S608
                 f"CROSS JOIN LATERAL ({sql} OFFSET 0) AS probe")
    with binding_cursor(binary_results=True) as cursor:
        cursor.execute(statement, [list(values), *params])
        return cursor.fetchall()


class PrecompiledLookup:
    """A one-row ORM lookup compiled to SQL once per process (once per database
    connection object, so per thread) and then run with each call's values: for the hot
    lookups of every API request, where Django's building and compiling of the queryset
    costs more than the database's answer (the API-key lookup with its ``select_related``
    rows: ~0.5-1 ms of ORM work per request on our 2-core hardware, issue 18).

    ``build(*markers)`` returns the queryset with ``markers`` where the values go (each
    marker a distinct string that the compiled parameters then carry); the row comes back
    as the ORM's own iterator makes it: the same converters, the same ``select_related``
    objects. The first matching row is returned (order the queryset), or ``None``."""

    def __init__(self, build: Callable[..., QuerySet[Any]], *, arity: int = 1) -> None:
        self._build = build
        self._markers = tuple(f"\x00precompiled-{n}\x00" for n in range(arity))
        # Per thread, as Django's connections are (a compiled statement holds its
        # connection's converters): gone with the thread.
        self._local = threading.local()
        self._alias: str | None = None

    def first(self, *values: Any) -> Any:
        if self._alias is None:  # the queryset's database (routers do not change)
            self._alias = self._build(*self._markers).db
        compiled = getattr(self._local, "compiled", None)
        if compiled is None or compiled.connection is not connections[self._alias]:
            compiled = _Compiled(self._build(*self._markers)[:1], self._markers)
            self._local.compiled = compiled
        return compiled.run(values)

    def sql(self) -> str:
        """The compiled statement (for tests and ``EXPLAIN``)."""
        queryset = self._build(*self._markers)
        return _Compiled(queryset[:1], self._markers).sql


class _Compiled:
    def __init__(self, queryset: QuerySet[Any], markers: tuple[str, ...]) -> None:
        from django.db.models.query import get_related_populators

        self.db = queryset.db
        compiler = queryset.query.get_compiler(using=self.db)
        self.connection = compiler.connection
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.positions = [self.params.index(marker) for marker in markers]
        klass_info, select = compiler.klass_info, compiler.select
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [f[0].target.attname for f in select[self.start:self.end]]
        self.related_populators = get_related_populators(klass_info, select, self.db)
        self.compiler = compiler
        self.converters = compiler.get_converters(
            [column[0] for column in select[0:compiler.col_count]])

    def run(self, values: tuple[Any, ...]) -> Any:
        params = list(self.params)
        for position, value in zip(self.positions, values, strict=True):
            params[position] = value
        with hot_statement_cursor(self.connection) as cursor:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if self.converters:  # what the ORM's iterator does to each row
            row = next(iter(self.compiler.apply_converters([row], self.converters)))
        obj = self.model.from_db(self.db, self.init_list, row[self.start:self.end])
        for populator in self.related_populators:
            populator.populate(row, obj)
        return obj
