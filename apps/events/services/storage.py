"""The two statements of the ingestion hot path, written for speed.

On PostgreSQL with psycopg 3 they run on a server-side-binding cursor with binary
parameters: a batch travels as a handful of arrays (``unnest``/``= ANY``) instead of
thousands of placeholders that a client-side cursor would have to split, quote and the
server to parse again (measured: 500 events insert in ~7 ms instead of ~30 ms). Everywhere
else (SQLite) they are a plain multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` and
an ORM ``IN`` query. Both go through Django's cursor wrappers, so query capture, debug
logging and error translation see them like any other query.

SQL text here is built only from the model's own identifiers; values are always bound.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model

from apps.core.db import binding_cursor, fetch_rows_matching, server_side_binding_available
from apps.events.models import Event, Item

_COLUMNS = ("tenant", "event_id", "subject_key", "item", "type", "value", "occurred_at",
            "properties", "created_at", "updated_at")


@cache
def _quoted(model: type[Model], fields: tuple[str, ...]) -> dict[str, str]:
    """The quoted column names of ``model``'s ``fields``, its ``table`` and its ``pk``."""
    quote = connection.ops.quote_name
    names = {name: quote(model._meta.get_field(name).column) for name in fields}
    names["table"] = quote(model._meta.db_table)
    names["pk"] = quote(model._meta.pk.column)
    return names


def fetch_item_pks(*, tenant_id: int, external_ids: Collection[str]) -> dict[str, int]:
    """``{external_id: pk}`` of the tenant's items among ``external_ids``. One query (one
    index probe per id on PostgreSQL)."""
    return dict(fetch_rows_matching(
        Item.objects.for_tenant(tenant_id).order_by().values_list("external_id", "pk"),
        field="external_id", values=list(external_ids)))


_ITEM_COLUMNS = ("tenant", "external_id", "title", "categories", "attributes", "is_active",
                 "auto_created", "created_at", "updated_at")


def create_items(*, tenant_id: int, external_ids: Collection[str], now: datetime
                 ) -> dict[str, int]:
    """Create active items titled by their ids (ingestion's unknown items) in one
    statement; ``{external_id: pk}`` of those created here (not of those a concurrent
    batch created first: the unique constraint skips them)."""
    if not external_ids:
        return {}
    n = _quoted(Item, _ITEM_COLUMNS)
    columns = ", ".join(n[name] for name in _ITEM_COLUMNS)
    conflict = (f"ON CONFLICT ({n['tenant']}, {n['external_id']}) DO NOTHING "
                f"RETURNING {n['external_id']}, {n['pk']}")
    ids = sorted(external_ids)
    if server_side_binding_available():
        sql = (f"INSERT INTO {n['table']} ({columns}) "  # noqa: S608
               "SELECT %b, x, x, '[]'::jsonb, '{}'::jsonb, true, true, %b, %b "
               f"FROM unnest(%b::varchar[]) AS batch(x) {conflict}")
        with binding_cursor() as cursor:
            cursor.execute(sql, [tenant_id, now, now, ids])
            return dict(cursor.fetchall())
    stamp = connection.ops.adapt_datetimefield_value(now)
    values = ", ".join(["(%s, %s, %s, '[]', '{}', %s, %s, %s, %s)"] * len(ids))
    params: list[Any] = []
    for external_id in ids:
        params.extend((tenant_id, external_id, external_id, True, True, stamp, stamp))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {n['table']} ({columns}) VALUES {values} {conflict}",  # noqa: S608
                       params)
        return dict(cursor.fetchall())


def _values_sql(rows: int) -> str:
    n = _quoted(Event, _COLUMNS)
    columns = ", ".join(n[name] for name in _COLUMNS)
    values = ", ".join(["(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"] * rows)
    return (f"INSERT INTO {n['table']} ({columns}) VALUES {values} "  # noqa: S608
            f"ON CONFLICT ({n['tenant']}, {n['event_id']}) DO NOTHING "
            f"RETURNING {n['event_id']}")


@cache
def _unnest_sql() -> str:
    n = _quoted(Event, _COLUMNS)
    columns = ", ".join(n[name] for name in _COLUMNS)
    return (
        f"INSERT INTO {n['table']} ({columns}) "  # noqa: S608
        "SELECT %b, e, s, i, t, v, o, p::jsonb, %b, %b FROM unnest("
        "%b::varchar[], %b::varchar[], %b::bigint[], %b::varchar[], %b::float8[], "
        "%b::timestamptz[], %b::text[]) AS batch(e, s, i, t, v, o, p) "
        f"ON CONFLICT ({n['tenant']}, {n['event_id']}) DO NOTHING "
        f"RETURNING {n['event_id']}"
    )


def insert_events(
    *,
    tenant_id: int,
    received_at: datetime,
    event_ids: Sequence[str],
    subject_keys: Sequence[str],
    item_pks: Sequence[int],
    types: Sequence[str],
    values: Sequence[float | None],
    occurred_at: Sequence[datetime],
    properties: Sequence[str],
) -> set[str]:
    """Insert one batch (columns as parallel sequences, ``properties`` as JSON text) in one
    statement, skipping event ids the tenant already has; return the ids inserted.

    Race-free: a concurrent retry of the same batch waits on the unique index and then
    skips, so each event is stored exactly once.
    """
    if not event_ids:
        return set()
    if server_side_binding_available():
        params: list[Any] = [tenant_id, received_at, received_at, list(event_ids),
                             list(subject_keys), list(item_pks), list(types), list(values),
                             list(occurred_at), list(properties)]
        with binding_cursor() as cursor:
            cursor.execute(_unnest_sql(), params)
            return {row[0] for row in cursor.fetchall()}
    adapt = connection.ops.adapt_datetimefield_value
    stamp = adapt(received_at)
    params = []
    for row in zip(event_ids, subject_keys, item_pks, types, values, occurred_at, properties,
                   strict=True):
        params.extend((tenant_id, row[0], row[1], row[2], row[3], row[4], adapt(row[5]),
                       row[6], stamp, stamp))
    with connection.cursor() as cursor:
        cursor.execute(_values_sql(len(event_ids)), params)
        return {row[0] for row in cursor.fetchall()}


def add_to_tally(*, tenant_id: int, day: Any, counts: dict[tuple[str, str], int],
                 now: datetime) -> None:
    """Add ``{(status, reason): n}`` to the tenant's tally of ``day`` in one statement
    (an upsert that increments, safe under concurrent batches)."""
    from apps.events.models import IngestionTally

    if not counts:
        return
    q = _quoted(IngestionTally, ("tenant", "day", "status", "reason", "count", "created_at",
                                 "updated_at"))
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(counts))
    params: list[Any] = []
    for (status, reason), n in sorted(counts.items()):
        params += [tenant_id, day, status, reason, n, now, now]
    sql = (f"INSERT INTO {q['table']} ({q['tenant']}, {q['day']}, {q['status']}, "  # noqa: S608 - identifiers of our model
           f"{q['reason']}, {q['count']}, {q['created_at']}, {q['updated_at']}) "
           f"VALUES {rows} ON CONFLICT ({q['tenant']}, {q['day']}, {q['status']}, "
           f"{q['reason']}) DO UPDATE SET {q['count']} = {q['table']}.{q['count']} "
           f"+ EXCLUDED.{q['count']}, {q['updated_at']} = EXCLUDED.{q['updated_at']}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
