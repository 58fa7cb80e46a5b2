"""The training snapshot: consented events of one tenant -> a users x items CSR matrix.

Rows are streamed from the database already aggregated per (subject, item, type) with
``values_list(...).iterator(chunk_size)``; each chunk goes straight into numpy arrays, so no
model instance is built and memory stays proportional to the distinct (subject, item) pairs.
Consent is evaluated *now*, in chunks, and applied per event type's purpose (DESIGN step 6).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, Max, QuerySet, Sum
from django.utils import timezone

from apps.consent.selectors import CHUNK_SIZE, get_subject_consent_views
from apps.events.models import Event
from apps.events.selectors import get_event_schema, list_events, retention_days
from apps.tenants.models import Tenant

STREAM_CHUNK = 50_000
FULL = "full"


@dataclass
class TrainingData:
    """The matrix and what is needed to split, serve and erase from it."""

    user_keys: list[str]          # row -> subject_key, sorted
    item_ids: np.ndarray          # column -> Item pk (int64), sorted
    matrix: Any                   # scipy.sparse.csr_matrix float32, users x items
    last_seen: np.ndarray         # float64 epoch seconds, aligned with matrix.data
    consent_snapshot_at: datetime
    stats: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @cached_property
    def recency_rank(self) -> np.ndarray:
        """Each interaction's position in its subject's history, newest first (shared by
        the hold-out split and the DP contribution bound)."""
        from apps.modeling.services.algorithms import recency_rank

        return recency_rank(self.matrix, self.last_seen)


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _stream_rows(events: QuerySet[Event], type_index: dict[str, int],
                 progress: Callable[[str], None] | None) -> tuple[list[str], Arrays, int]:
    """Portable path: aggregated rows streamed in chunks into numpy arrays."""
    rows = (events.values("subject_key", "item_id", "type")
            .annotate(n=Count("id"), vsum=Sum("value"), last=Max("occurred_at"))
            .order_by()
            .values_list("subject_key", "item_id", "type", "n", "vsum", "last"))
    subject_index: dict[str, int] = {}
    parts: list[tuple[np.ndarray, ...]] = []
    buffer: list[tuple[Any, ...]] = []
    streamed = 0

    def flush() -> None:
        if not buffer:
            return
        keys, items, types, counts, sums, lasts = zip(*buffer, strict=True)
        parts.append((
            np.fromiter((subject_index.setdefault(k, len(subject_index)) for k in keys),
                        dtype=np.int64, count=len(keys)),
            np.fromiter(items, dtype=np.int64, count=len(items)),
            np.fromiter((type_index[t] for t in types), dtype=np.int64, count=len(types)),
            np.fromiter(counts, dtype=np.float64, count=len(counts)),
            np.fromiter((s or 0.0 for s in sums), dtype=np.float64, count=len(sums)),
            np.fromiter((d.timestamp() for d in lasts), dtype=np.float64, count=len(lasts)),
        ))
        buffer.clear()

    for row in rows.iterator(chunk_size=STREAM_CHUNK):
        buffer.append(row)
        if len(buffer) >= STREAM_CHUNK:
            streamed += len(buffer)
            flush()
            if progress:
                progress(f"streamed {streamed} aggregated rows")
    streamed += len(buffer)
    flush()
    if not parts:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return [], (empty_i, empty_i, empty_i, empty_f, empty_f, empty_f), 0
    arrays = tuple(np.concatenate(a) for a in zip(*parts, strict=True))
    return list(subject_index), arrays, streamed  # type: ignore[return-value]


#: One row of the binary COPY below: a field count, then (length, value) per column.
_COPY_ROW = np.dtype([("fields", ">i2"),
                      ("l0", ">i4"), ("subject", ">i8"), ("l1", ">i4"), ("item", ">i8"),
                      ("l2", ">i4"), ("type", ">i8"), ("l3", ">i4"), ("value", ">f8"),
                      ("l4", ">i4"), ("at", ">f8")])
_COPY_HEADER = 19  # signature (11) + flags (4) + header extension length (4)


def _aggregate(subject: np.ndarray, item: np.ndarray, typ: np.ndarray, value: np.ndarray,
               at: np.ndarray) -> Arrays:
    """Per (subject, item, type): count, sum of values and last time, in numpy."""
    if not len(subject):
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return empty_i, empty_i, empty_i, empty_f, empty_f, empty_f
    items, column = np.unique(item, return_inverse=True)
    n_types = int(typ.max()) + 1
    key = (subject * len(items) + column) * n_types + typ
    keys, inverse = np.unique(key, return_inverse=True)
    last = np.full(len(keys), -np.inf)
    np.maximum.at(last, inverse, at)
    return (keys // n_types // len(items), items[keys // n_types % len(items)],
            keys % n_types, np.bincount(inverse, minlength=len(keys)).astype(np.float64),
            np.bincount(inverse, weights=value, minlength=len(keys)), last)


def _copy_postgres(tenant: Tenant, events: QuerySet[Event], type_codes: list[str],
                   since: datetime) -> tuple[list[str], Arrays, int]:
    """PostgreSQL path: the events come out through a binary ``COPY ... TO STDOUT`` of
    fixed-width numbers (each subject as its rank among the distinct keys, in bytewise
    order), parsed by numpy in one call and aggregated in numpy; the keys come from a
    second query with the same order. Both run in one REPEATABLE READ transaction so the
    ranks match the keys. (No GROUP BY over text keys in the database: measured 3x faster
    on 2.2M events.)"""
    from psycopg import sql

    table = sql.Identifier(Event._meta.db_table)
    whens = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(code), sql.Literal(n))
        for n, code in enumerate(type_codes))
    where = sql.SQL("tenant_id = {} AND occurred_at >= {} AND type = ANY({})").format(
        sql.Literal(tenant.pk), sql.Literal(since), sql.Literal(type_codes))
    distinct = sql.SQL("SELECT DISTINCT subject_key FROM {table} WHERE {where}").format(
        table=table, where=where)
    copy = sql.SQL(
        "COPY (WITH k AS (SELECT subject_key, (ROW_NUMBER() OVER"
        " (ORDER BY subject_key COLLATE \"C\") - 1)::int8 AS r FROM ({distinct}) d)"
        " SELECT k.r, e.item_id::int8, (CASE e.type {whens} END)::int8,"
        " COALESCE(e.value, 0)::float8, EXTRACT(EPOCH FROM e.occurred_at)::float8"
        " FROM {table} e JOIN k USING (subject_key) WHERE {where}"
        ") TO STDOUT (FORMAT BINARY)").format(distinct=distinct, whens=whens, table=table,
                                              where=where)
    keys_sql = sql.SQL("SELECT subject_key FROM ({distinct}) d ORDER BY subject_key COLLATE \"C\""
                       ).format(distinct=distinct)

    def read() -> tuple[list[str], bytes]:
        chunks: list[bytes] = []
        with connection.cursor() as cursor:
            raw = cursor.cursor  # the psycopg cursor under Django's wrapper
            raw.execute(keys_sql)
            keys = [row[0] for row in raw.fetchall()]
            with raw.copy(copy) as stream:
                chunks.extend(bytes(block) for block in stream)
        return keys, b"".join(chunks)

    if connection.in_atomic_block:
        keys, data = read()
    else:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            keys, data = read()
    rows = np.frombuffer(data[_COPY_HEADER:len(data) - 2], dtype=_COPY_ROW)
    subject = rows["subject"].astype(np.int64)
    if len(rows) and int(subject.max()) + 1 != len(keys):
        raise RuntimeError("subject ranks and keys disagree")  # never silently misattribute
    arrays = _aggregate(subject, rows["item"].astype(np.int64), rows["type"].astype(np.int64),
                        rows["value"].astype(np.float64), rows["at"].astype(np.float64))
    return keys, arrays, len(rows)


def _allowed_subjects(tenant: Tenant, keys: list[str], purposes: set[str]
                      ) -> dict[str, np.ndarray]:
    """``{purpose: bool array over keys}``: may this subject's events of this purpose be
    trained on now? Level "full", not restricted, purpose allowed (consent app's rules)."""
    allowed = {p: np.zeros(len(keys), dtype=bool) for p in purposes}
    for start in range(0, len(keys), CHUNK_SIZE):
        chunk = keys[start:start + CHUNK_SIZE]
        views = get_subject_consent_views(tenant=tenant, subject_keys=chunk)
        for offset, key in enumerate(chunk):
            view = views[key]
            if view.level != FULL or view.restricted:
                continue
            for purpose in purposes & view.allowed_purposes:
                allowed[purpose][start + offset] = True
    return allowed


def snapshot_training_data(
    *, tenant: Tenant, weighting: str = "linear",
    exclude_subjects: frozenset[str] = frozenset(),
    progress: Callable[[str], None] | None = None,
) -> TrainingData:
    """Build the training matrix of ``tenant`` from events within retention whose subject
    consents *now* to the purpose of the event's type. Weights per type (or the event's
    value for ``weight_from_value`` types) are summed per (subject, item);
    ``weighting="log"`` stores ``log1p(sum)`` instead. Rows are sorted by subject key and
    columns by item pk, so the same data always gives the same matrix (reproducibility).
    ``exclude_subjects`` drops subjects as if they had no events (tests, oracles)."""
    import scipy.sparse as sp

    started = time.perf_counter()
    now = timezone.now()
    schema = get_event_schema(tenant=tenant)
    type_codes = sorted(schema.types)
    type_index = {code: n for n, code in enumerate(type_codes)}
    since = now - timedelta(days=retention_days(tenant))
    events = list_events(tenant=tenant, since=since).filter(type__in=type_codes)
    if connection.vendor == "postgresql" and type_codes:
        keys, (subj, item, typ, cnt, vsum, last), streamed = _copy_postgres(
            tenant, events, type_codes, since)
    else:
        keys, (subj, item, typ, cnt, vsum, last), streamed = _stream_rows(
            events, type_index, progress)
    stream_s = time.perf_counter() - started

    # Consent, evaluated now (the snapshot time recorded on the model version).
    consent_started = time.perf_counter()
    consent_at = timezone.now()
    purposes = {schema.types[c].purpose for c in type_codes}
    allowed = _allowed_subjects(tenant, keys, purposes)
    if exclude_subjects:
        excluded = np.array([k in exclude_subjects for k in keys], dtype=bool)
        for mask in allowed.values():
            mask &= ~excluded
    keep = np.zeros(len(subj), dtype=bool)
    weight = np.zeros(len(subj), dtype=np.float64)
    for code, n in type_index.items():
        spec = schema.types[code]
        of_type = typ == n
        keep |= of_type & allowed[spec.purpose][subj]
        weight[of_type] = (np.maximum(vsum[of_type], 0.0) if spec.weight_from_value
                           else cnt[of_type] * spec.weight)
    keep &= weight > 0
    consent_s = time.perf_counter() - consent_started

    build_started = time.perf_counter()
    subj, item, weight, last = subj[keep], item[keep], weight[keep], last[keep]
    used_subjects = np.unique(subj)
    order = sorted(used_subjects.tolist(), key=keys.__getitem__)
    user_keys = [keys[s] for s in order]
    remap = np.full(len(keys), -1, dtype=np.int64)
    remap[np.array(order, dtype=np.int64)] = np.arange(len(order))
    item_ids, col = np.unique(item, return_inverse=True)
    row = remap[subj]
    n_users, n_items = len(user_keys), len(item_ids)
    pair = row * max(n_items, 1) + col
    pairs, inverse = np.unique(pair, return_inverse=True)  # sorted: row-major CSR order
    summed = np.bincount(inverse, weights=weight, minlength=len(pairs))
    last_seen = np.full(len(pairs), -np.inf)
    np.maximum.at(last_seen, inverse, last)
    data = np.log1p(summed) if weighting == "log" else summed
    rows_of_pairs = pairs // max(n_items, 1)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows_of_pairs, minlength=n_users), out=indptr[1:])
    matrix = sp.csr_matrix(
        (data.astype(np.float32), (pairs % max(n_items, 1)).astype(np.int32), indptr),
        shape=(n_users, n_items))
    build_s = time.perf_counter() - build_started

    return TrainingData(
        user_keys=user_keys, item_ids=item_ids.astype(np.int64), matrix=matrix,
        last_seen=last_seen, consent_snapshot_at=consent_at,
        stats={
            "events_aggregated_rows": int(streamed),
            "subjects_seen": len(keys),
            "subjects_consented": n_users,
            "subjects_excluded_by_consent": len(keys) - n_users,
            "items": n_items,
            "interactions": int(matrix.nnz),
            "density": float(matrix.nnz) / max(n_users * n_items, 1),
            "weighting": weighting,
            "retention_since": since.isoformat(),
        },
        timings={"stream_s": stream_s, "consent_s": consent_s, "csr_build_s": build_s},
    )
