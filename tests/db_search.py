"""Search every text and binary column of every table for a value (privacy invariant 1)."""

from __future__ import annotations

from django.db import connection


def columns_containing(needle: str, *, exclude_tables: tuple[str, ...] = ()) -> list[str]:
    """``table.column`` for every column whose value contains ``needle`` (text or bytes)."""
    raw = needle.encode()
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table in exclude_tables:
                continue
            description = connection.introspection.get_table_description(cursor, table)
            names = [c.name for c in description]
            quoted = ", ".join(connection.ops.quote_name(n) for n in names)
            cursor.execute(f"SELECT {quoted} FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for name, value in zip(names, row, strict=True):
                    if isinstance(value, memoryview | bytes | bytearray):
                        found = raw in bytes(value)
                    else:
                        found = value is not None and needle in str(value)
                    if found:
                        hits.append(f"{table}.{name}")
    return sorted(set(hits))
