"""The training snapshot: consented events of one tenant -> a users x items CSR matrix.

On PostgreSQL the events arrive as fixed-width binary records packed into a few large values
(:func:`_read_postgres`); elsewhere rows are streamed already
aggregated per (subject, item, type) with ``values_list(...).iterator(chunk_size)``. Either way
no object is built per event: numpy numbers the subjects and items and sums the weights.
Consent is evaluated *now*, in chunks, and applied per event type's purpose (DESIGN step 6).

No single subject can break or steer the matrix (issue 15): subjects under quarantine, or
found anomalous now (:mod:`~apps.modeling.services.quarantine`), are left out; each cell's
summed weight is capped (``model_max_cell_weight``) and a subject's row whose total exceeds
``model_max_subject_weight`` is scaled down proportionally. Both caps act on one subject's
own row only, so they keep the unlearning oracle's guarantee.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from itertools import zip_longest
from typing import Any

import numpy as np
from django.db import DataError, connection, transaction
from django.db.models import Count, Max, QuerySet, Sum
from django.utils import timezone

from apps.consent.selectors import CHUNK_SIZE, get_subject_consent_views
from apps.events.selectors import (
    get_event_schema,
    list_events,
    retention_days,
    training_records_sql,
)
from apps.modeling.config import ModelingSettings, modeling_settings
from apps.modeling.services.quarantine import (
    QuarantineFinding,
    find_anomalous_subjects,
    quarantined_subject_keys,
    released_volumes,
)
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
    #: Subjects this snapshot found anomalous and left out; training stores them
    #: (``quarantine_subjects``). Those already quarantined are not repeated here.
    quarantine: list[QuarantineFinding] = field(default_factory=list)

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


def _stream_rows(events: QuerySet[Any], type_index: dict[str, int],
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


def _dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for integer ids (item pks): in linear time
    through a presence table when the ids span a range not much larger than their count
    (a tenant's catalog mostly is), else by sorting."""
    low, high = int(values.min()), int(values.max())
    if high - low > max(4 * len(values), 1 << 20):
        return np.unique(values, return_inverse=True)
    present = np.zeros(high - low + 1, dtype=bool)
    present[values - low] = True
    lookup = np.cumsum(present) - 1
    return np.flatnonzero(present) + low, lookup[values - low]


def _stable_groups(key: np.ndarray, *, consume: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, starts, ordered)``: the permutation that sorts the non-negative ``key``
    stably, where each run of equal keys starts in it, and the keys in that order. Stable,
    so sums over a group add up in input order whatever else is in the input (an erased
    subject's rows do not change the bits of anyone else's weights: the unlearning oracle).
    The position is packed into the low bits of each key, which makes keys unique (so any
    sort is stable) and lets numpy sort values instead of arguments: five times faster than
    ``argsort`` at millions of rows. ``consume``: ``key`` (int64) may be overwritten, which
    spares a copy of it."""
    n = len(key)
    if (key[1:] >= key[:-1]).all():  # already in order (the snapshot's second grouping)
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        return np.arange(n, dtype=np.int64), starts, key
    shift = max(int(n - 1).bit_length(), 1)
    if int(key.max()) < 1 << (62 - shift):
        packed = key if consume and key.dtype == np.int64 else key.astype(np.int64)
        packed <<= shift
        packed |= np.arange(n, dtype=np.int64)
        packed.sort()
        order = packed & ((1 << shift) - 1)
        packed >>= shift
        ordered = packed
    else:
        order = np.argsort(key, kind="stable")
        ordered = key[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return order, starts, ordered


def _aggregate(subject: np.ndarray, item: np.ndarray, typ: np.ndarray, value: np.ndarray,
               at: np.ndarray) -> Arrays:
    """Per (subject, item, type): count, sum of values and last time, in numpy; the rows come
    out sorted by (subject, item, type). The three are packed into one key, each in its own
    bits, so a group's fields are read back from its sorted key by shifts, not gathered
    from the events; where no two events share a group (a set of ratings), the sums are the
    values themselves."""
    if not len(subject):
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return empty_i, empty_i, empty_i, empty_f, empty_f, empty_f
    items, column = _dense_codes(item)
    type_bits = int(typ.max()).bit_length()
    low_bits = max(len(items) - 1, 0).bit_length() + type_bits
    key = subject << low_bits
    column <<= type_bits  # its own array (_dense_codes made it)
    key |= column
    key |= typ
    del column
    order, starts, ordered = _stable_groups(key, consume=True)
    first = ordered[starts]
    n = len(key)
    if len(starts) == n:  # every group one event
        counts, sums, last = np.ones(n, dtype=np.float64), value[order], at[order]
    else:
        counts = np.diff(np.append(starts, n)).astype(np.float64)
        # Values stored before ingestion bounded them may add up past float64: the sum is
        # then infinite, and the snapshot's cell cap bounds it.
        with np.errstate(over="ignore"):
            sums = np.add.reduceat(value[order], starts)
        last = np.maximum.reduceat(at[order], starts)
    return (first >> low_bits, items[(first & ((1 << low_bits) - 1)) >> type_bits],
            first & ((1 << type_bits) - 1), counts, sums, last)


#: One event as the PostgreSQL path ships it (see :func:`_read_postgres`): the subject key
#: as the 32 bytes its 64 hex characters spell (four big-endian words: numpy's byte strings
#: drop trailing NUL bytes), item pk, value, time. The type is its group's (one group of
#: records per event type and chunk).
_KEY_WORDS = 4
_ITEM, _VALUE, _AT = 4, 5, 6
_RECORD_WORDS = 7
_EVENT_RECORD = np.dtype([*((f"k{n}", ">u8") for n in range(_KEY_WORDS)), ("item", ">i8"),
                          ("value", ">f8"), ("at", ">i8")])
_POSTGRES_EPOCH = 946_684_800  # timestamptz_send counts microseconds from 2000-01-01 UTC
_CHUNK_BYTES = 256 << 20        # far below the 1 GB a PostgreSQL value may hold

#: PostgreSQL's MaxHeapTuplesPerPage (8 kB pages): a block range of n pages never holds more
#: than n times this many rows, whichever tenants they belong to.
_MAX_ROWS_PER_PAGE = 291
_END_OF_TABLE = f"({2**32 - 1},0)"  # beyond the last possible block

#: From this size of the events table (every tenant's) the chunks are built by two server
#: processes at once: building the records is the server's work, one core per query.
_TWO_READERS_FROM_BYTES = 64 << 20

#: One row of a chunk's answer: an event type, its events' records, how many.
_Group = tuple[str, bytes, int]


def _block_ranges(pages: int, *, even: bool) -> list[dict[str, str]]:
    """Consecutive block ranges of the events table (``low``/``high`` tids), each small
    enough that its records stay under ``_CHUNK_BYTES``, the last one open-ended. A range is
    a TID range scan (PostgreSQL 14+), so the chunks together read the table once."""
    per_chunk = max(1, _CHUNK_BYTES // (_MAX_ROWS_PER_PAGE * _EVENT_RECORD.itemsize))
    count = max(1, math.ceil(pages / per_chunk))
    if even:
        count += count % 2
    size = max(1, math.ceil(pages / count))
    ranges = [{"low": f"({n * size},0)", "high": f"({(n + 1) * size},0)"} for n in range(count)]
    ranges[-1]["high"] = _END_OF_TABLE  # pages added since are read too
    return ranges


def _fetch_chunks(statement: str, params: dict[str, Any], chunks: Sequence[dict[str, str]]
                  ) -> list[list[_Group]]:
    """Each chunk's groups, in the order of ``chunks`` (types in name order inside one)."""
    from apps.core.db import binding_cursor

    with binding_cursor(binary_results=True) as cursor:
        results = []
        for chunk in chunks:
            cursor.execute(statement, {**params, **chunk})
            results.append(sorted(cursor.fetchall()))
    return results


def _set_reading_options(cursor: Any) -> None:
    """For the reading transaction: no synchronized scans (rows in physical order, see
    :func:`_read_chunks`), and a plan per chunk from its own block range. psycopg prepares
    a statement run five times, and PostgreSQL's generic plan for it, priced with an average
    tenant's share, could walk the tenant's index once per chunk."""
    cursor.execute("SET LOCAL synchronize_seqscans = off")
    cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")


def _fetch_chunks_in_snapshot(snapshot: str, statement: str, params: dict[str, Any],
                              chunks: Sequence[dict[str, str]]) -> list[list[_Group]]:
    """:func:`_fetch_chunks` on this thread's own connection, in the reading transaction's
    exported snapshot (so both readers see exactly the same events)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute("SET TRANSACTION SNAPSHOT %s", [snapshot])
        _set_reading_options(cursor)
        return _fetch_chunks(statement, params, chunks)


def _scans_the_table(statement: str, table: str, params: dict[str, Any]) -> bool:
    """Does the planner read the whole unchunked query from the table itself, rather than
    through an index (the tenant is a small share of the table)? Only then are block ranges
    the right chunks: through an index, each range would walk the tenant's whole index."""
    whole = {**params, "low": "(0,0)", "high": _END_OF_TABLE}
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", whole)
        nodes = [cursor.fetchone()[0][0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node.get("Relation Name") == table:
            return node["Node Type"] in ("Seq Scan", "Tid Range Scan")
        nodes.extend(node.get("Plans", []))
    return False


def _read_chunks(tenant: Tenant, type_codes: list[str], since: datetime, *,
                 beside: ThreadPoolExecutor | None = None,
                 ) -> list[_Group]:
    """The tenant's events as groups of fixed-width binary records, one per event type and
    chunk, in the table's order (each type's events of a chunk in the chunk's order). Called
    in a ``REPEATABLE READ`` transaction.

    When the planner reads the tenant's events from the table (it is a large share of it),
    the chunks are consecutive block ranges (:func:`_block_ranges`): with ``beside`` (the
    outermost transaction only) a large table's odd chunks are read on a second connection
    in an exported snapshot, so two server processes build records at once. Through an
    index, it is one chunk. Synchronized scans are off: rows come in the table's physical
    order, whatever else scans it, so the same table gives the same sums to the bit."""
    statement, table = training_records_sql()
    params = {"tenant": tenant.pk, "since": since, "types": type_codes}
    with connection.cursor() as cursor:
        _set_reading_options(cursor)
        cursor.execute("SELECT pg_relation_size(%s::regclass), "
                       "current_setting('block_size')::int", [table])
        size, block = cursor.fetchone()
    in_ranges = _scans_the_table(statement, table, params)
    two_readers = in_ranges and beside is not None and size >= _TWO_READERS_FROM_BYTES
    chunks = (_block_ranges(size // block, even=two_readers) if in_ranges
              else [{"low": "(0,0)", "high": _END_OF_TABLE}])
    snapshot = None
    if two_readers:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]

    if snapshot is not None and beside is not None:
        odd = beside.submit(_in_own_connection, _fetch_chunks_in_snapshot, snapshot,
                            statement, params, chunks[1::2])
        even = _fetch_chunks(statement, params, chunks[0::2])
        results = [r for pair in zip_longest(even, odd.result()) for r in pair if r is not None]
    else:
        results = _fetch_chunks(statement, params, chunks)
    return [group for groups in results for group in groups]


def _number_subjects(prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number each event's subject in key order from the first 8 bytes of its key:
    ``(subject per event, one event of each subject)``. (Two subjects sharing those bytes
    get one number: the caller checks every whole key.) One sort of values: the top bits of
    the prefix with the position packed below them; if two subjects also shared the top
    bits, the sorted prefixes could come out of order, and the exact (slower) numbering
    takes over."""
    n = len(prefix)
    shift = max(int(n - 1).bit_length(), 1)
    packed = (prefix >> np.uint64(shift + 1)).view(np.int64)  # the top 63 - shift bits
    packed <<= shift
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    order = packed & ((1 << shift) - 1)
    del packed
    ordered = prefix[order]
    if not (ordered[1:] >= ordered[:-1]).all():
        distinct = np.unique(prefix)
        subject = np.searchsorted(distinct, prefix).astype(np.int64)
        sample = np.empty(len(distinct), dtype=np.int64)
        sample[subject] = np.arange(n)
        return subject, sample
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    numbers = np.cumsum(first)
    numbers -= 1
    subject = np.empty(n, dtype=np.int64)
    subject[order] = numbers
    return subject, order[first]


def _read_postgres(tenant: Tenant, type_codes: list[str], since: datetime,
                   on_keys: Callable[[list[str]], None] | None = None,
                   beside: ThreadPoolExecutor | None = None,
                   ) -> tuple[list[str], Arrays, int] | None:
    """PostgreSQL path: each event travels as one fixed-width record inside a few large
    ``bytea`` values (one per event type and chunk) that numpy reads in one call each; the
    server does no sorting or joining and Python builds no object per event (psycopg hands
    a ``COPY`` over one row at a time, which costs more than everything else here). Subjects are
    numbered in their keys' order (:func:`_number_subjects`), every row's whole key checked
    against its number's; each field is cast to native order while the chunks are joined.

    ``None`` when a key is not 64 hex characters or two keys share 16 leading ones: the
    portable path reads then. (A key in upper-case hex would come back in lower case and
    match no consent, so its events would be left out: pseudonymized keys are lower case.)
    ``on_keys`` gets the subject keys before the aggregation starts (no fallback after it).
    ``beside`` lends a thread for a second reader (outermost transaction only).
    """
    outermost = not connection.in_atomic_block
    try:
        # A savepoint inside a caller's transaction, so that a failed decode() leaves it
        # usable; alone, one REPEATABLE READ snapshot for every chunk.
        with transaction.atomic():
            if outermost:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            groups = _read_chunks(tenant, type_codes, since,
                                  beside=beside if outermost else None)
    except DataError:  # decode(): a key that is not hexadecimal
        return None
    type_index = {code: n for n, code in enumerate(type_codes)}
    groups = [(code, blob, n) for code, blob, n in groups if n and code in type_index]
    if not groups:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return [], (empty_i, empty_i, empty_i, empty_f, empty_f, empty_f), 0
    if any(len(blob) != n * _EVENT_RECORD.itemsize for _, blob, n in groups):
        return None  # a key of fewer than 64 characters (never misattribute: no guessing)
    # Each record as seven 8-byte words in the buffer's own byte order: the key's four are
    # compared as they are, the others byte-swapped in place once copied out.
    records = [np.frombuffer(blob, dtype=np.uint64).reshape(n, _RECORD_WORDS)
               for _, blob, n in groups]
    count = sum(n for _, _, n in groups)

    def column(word: int, dtype: Any) -> np.ndarray:  # big-endian in, native out
        values = np.concatenate([r[:, word] for r in records])
        return values.byteswap(inplace=True).view(dtype)

    typ = np.repeat(np.array([type_index[code] for code, _, _ in groups], dtype=np.int64),
                    [n for _, _, n in groups])
    subject, sample = _number_subjects(column(0, np.uint64))
    # Numbered by the first 8 bytes: every event's whole key must be its subject's. Checked
    # chunk by chunk against one event of each subject, without copying the keys out.
    bounds = np.cumsum([0, *(len(r) for r in records)])
    sample_keys = np.empty((len(sample), _KEY_WORDS), dtype=np.uint64)
    chunk_of_sample = np.searchsorted(bounds, sample, side="right") - 1
    for index, (r, start) in enumerate(zip(records, bounds, strict=False)):
        here = chunk_of_sample == index
        sample_keys[here] = r[sample[here] - start, :_KEY_WORDS]
    for r, start in zip(records, bounds, strict=False):
        if not np.array_equal(r[:, 1:_KEY_WORDS],
                              sample_keys[subject[start:start + len(r)], 1:]):
            return None
    keys = [key.tobytes().hex() for key in sample_keys]  # the key's bytes, in order
    if on_keys is not None:
        on_keys(keys)
    # Microseconds since 1970, then one division: the same float as datetime.timestamp().
    at = column(_AT, np.int64)
    at += _POSTGRES_EPOCH * 1_000_000
    seconds = at.astype(np.float64)
    seconds /= 1e6
    del at
    arrays = _aggregate(subject, column(_ITEM, np.int64), typ, column(_VALUE, np.float64),
                        seconds)
    return keys, arrays, count


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


_Consent = tuple[dict[str, np.ndarray], datetime, float]


def _evaluate_consent(tenant: Tenant, keys: list[str], purposes: set[str]) -> _Consent:
    """``(allowed per purpose, when it was evaluated, seconds it took)``."""
    started = time.perf_counter()
    evaluated_at = timezone.now()
    allowed = _allowed_subjects(tenant, keys, purposes)
    return allowed, evaluated_at, time.perf_counter() - started


def _in_own_connection(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function`` in a worker thread, then close the thread's database connection."""
    try:
        return function(*args)
    finally:
        connection.close()


def snapshot_training_data(
    *, tenant: Tenant, weighting: str = "linear",
    exclude_subjects: frozenset[str] = frozenset(),
    progress: Callable[[str], None] | None = None,
    cfg: ModelingSettings | None = None,
) -> TrainingData:
    """Build the training matrix of ``tenant`` from events within retention whose subject
    consents *now* to the purpose of the event's type. Weights per type (or the event's
    value for ``weight_from_value`` types) are summed per (subject, item);
    ``weighting="log"`` stores ``log1p(sum)`` instead. Rows are sorted by subject key and
    columns by item pk, so the same data always gives the same matrix (reproducibility).
    ``exclude_subjects`` drops subjects as if they had no events (tests, oracles).
    Quarantined and anomalous subjects are left out and the weights capped (see the module
    docstring) per ``cfg`` (default: the tenant's modeling settings). Reads only: the new
    findings are returned in ``quarantine`` for the caller to store."""
    import scipy.sparse as sp

    cfg = cfg or modeling_settings(tenant)
    started = time.perf_counter()
    now = timezone.now()
    schema = get_event_schema(tenant=tenant)
    type_codes = sorted(schema.types)
    type_index = {code: n for n, code in enumerate(type_codes)}
    since = now - timedelta(days=retention_days(tenant))
    events = list_events(tenant=tenant, since=since).filter(type__in=type_codes)
    purposes = {schema.types[c].purpose for c in type_codes}
    consent: Future[_Consent] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="consent") as beside:

        def evaluate_beside(keys: list[str]) -> None:
            nonlocal consent
            consent = beside.submit(_in_own_connection, _evaluate_consent, tenant, keys,
                                    purposes)

        read = None
        if connection.vendor == "postgresql" and type_codes:
            # Consent is evaluated on a second connection while numpy aggregates, unless
            # the caller's transaction holds rows a second connection could not see.
            alone = not connection.in_atomic_block
            read = _read_postgres(tenant, type_codes, since,
                                  on_keys=evaluate_beside if alone else None,
                                  beside=beside if alone else None)
        if read is None:
            read = _stream_rows(events, type_index, progress)
        keys, (subj, item, typ, cnt, vsum, last), streamed = read
        stream_s = time.perf_counter() - started
        # Consent, evaluated now (the snapshot time recorded on the model version).
        allowed, consent_at, consent_s = (consent.result() if consent is not None
                                          else _evaluate_consent(tenant, keys, purposes))
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
    # Quarantine: volume = the subject's events that consent lets training use.
    volumes = np.bincount(subj[keep], weights=cnt[keep], minlength=len(keys)).astype(np.int64)
    already = quarantined_subject_keys(tenant=tenant)
    findings, limit = find_anomalous_subjects(
        keys, volumes, cfg, released=released_volumes(tenant=tenant) if len(keys) else {},
        already=already)
    left_out = already | {finding.subject_key for finding in findings}
    quarantined = 0
    if left_out:
        out = np.fromiter((k in left_out for k in keys), dtype=bool, count=len(keys))
        quarantined = int(np.count_nonzero(out & (volumes > 0)))
        keep &= ~out[subj]
    keep &= weight > 0  # NaN (a sum of absurd values stored before validation) too

    build_started = time.perf_counter()
    subj, item, weight, last = subj[keep], item[keep], weight[keep], last[keep]
    used_subjects = np.flatnonzero(np.bincount(subj, minlength=len(keys)))
    order = sorted(used_subjects.tolist(), key=keys.__getitem__)
    user_keys = [keys[s] for s in order]
    remap = np.full(len(keys), -1, dtype=np.int64)
    remap[np.array(order, dtype=np.int64)] = np.arange(len(order))
    item_ids, col = _dense_codes(item) if len(item) else (np.zeros(0, np.int64), item)
    row = remap[subj]
    n_users, n_items = len(user_keys), len(item_ids)
    pair = row * max(n_items, 1) + col
    if len(pair):  # several types of one (subject, item) add up into one cell
        by_pair, starts, ordered = _stable_groups(pair)
        if ordered is pair and len(starts) == len(pair):  # already in order, all distinct
            rows_of_pairs, cols_of_pairs, summed, last_seen = row, col, weight, last
        else:
            first = by_pair[starts]
            rows_of_pairs, cols_of_pairs = row[first], col[first]
            summed = np.add.reduceat(weight[by_pair], starts)
            last_seen = np.maximum.reduceat(last[by_pair], starts)
    else:
        rows_of_pairs, cols_of_pairs, summed, last_seen = row, col, weight, last
    summed, cells_capped, subjects_scaled = _cap_weights(summed, rows_of_pairs, n_users, cfg)
    data = np.log1p(summed) if weighting == "log" else summed
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows_of_pairs, minlength=n_users), out=indptr[1:])
    matrix = sp.csr_matrix(
        (data.astype(np.float32), cols_of_pairs.astype(np.int32), indptr),
        shape=(n_users, n_items))
    build_s = time.perf_counter() - build_started

    return TrainingData(
        user_keys=user_keys, item_ids=item_ids.astype(np.int64), matrix=matrix,
        last_seen=last_seen, consent_snapshot_at=consent_at,
        stats={
            "events_aggregated_rows": int(streamed),
            "subjects_seen": len(keys),
            "subjects_consented": n_users,
            "subjects_excluded_by_consent": len(keys) - n_users - quarantined,
            "subjects_quarantined": quarantined,
            "quarantine_threshold": round(limit.threshold, 3),
            "cells_capped": cells_capped,
            "subjects_weight_scaled": subjects_scaled,
            "items": n_items,
            "interactions": int(matrix.nnz),
            "density": float(matrix.nnz) / max(n_users * n_items, 1),
            "weighting": weighting,
            "retention_since": since.isoformat(),
        },
        timings={"stream_s": stream_s, "consent_s": consent_s, "csr_build_s": build_s},
        quarantine=findings,
    )


def _cap_weights(summed: np.ndarray, rows: np.ndarray, n_users: int,
                 cfg: ModelingSettings) -> tuple[np.ndarray, int, int]:
    """``(weights, cells capped, subjects scaled)``: each (subject, item) weight at most
    ``max_cell_weight``; a subject whose weights add up to more than ``max_subject_weight``
    has them all scaled down by the same factor, so their row keeps its shape. A row's sum
    adds its own cells in order (``bincount``): nobody else's data changes its bits."""
    over_cell = summed > cfg.max_cell_weight
    capped = np.minimum(summed, cfg.max_cell_weight)
    totals = np.bincount(rows, weights=capped, minlength=n_users)
    over = totals > cfg.max_subject_weight
    if over.any():
        scale = np.ones(n_users, dtype=np.float64)
        scale[over] = cfg.max_subject_weight / totals[over]
        capped = capped * scale[rows]
    return capped, int(np.count_nonzero(over_cell)), int(np.count_nonzero(over))
