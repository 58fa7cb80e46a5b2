"""The training snapshot: consent now, weights, retention, tenant scope, determinism."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import numpy as np
import pytest
from django.utils import timezone

from apps.events.models import EventType, Item
from apps.modeling.services.dataset import snapshot_training_data
from tests.factories.events import grant_consent
from tests.factories.modeling import add_events, add_items


@pytest.fixture
def catalog(tenant):
    add_items(tenant, ["a", "b", "c"])
    return tenant


def _weights(data, key: str) -> dict[int, float]:
    row = data.user_keys.index(key)
    start, end = data.matrix.indptr[row], data.matrix.indptr[row + 1]
    return dict(zip(data.item_ids[data.matrix.indices[start:end]].tolist(),
                    data.matrix.data[start:end].tolist(), strict=True))


def test_weights_per_type_are_summed_per_subject_and_item(catalog):
    key = grant_consent(catalog, "s1")
    add_events(catalog, "s1", ["a", "a", "b"], type="view", subject_key=key)
    add_events(catalog, "s1", ["a"], type="purchase", subject_key=key, start_minutes_ago=50)
    add_events(catalog, "s1", ["c", "c"], type="rating", value=4.0, subject_key=key,
               start_minutes_ago=40)
    data = snapshot_training_data(tenant=catalog)
    pk = dict(Item.objects.for_tenant(catalog).values_list("external_id", "pk"))
    assert _weights(data, key) == {pk["a"]: 2 * 1.0 + 8.0, pk["b"]: 1.0, pk["c"]: 8.0}
    logged = snapshot_training_data(tenant=catalog, weighting="log")
    assert _weights(logged, key)[pk["a"]] == pytest.approx(np.log1p(10.0))


def test_only_subjects_consenting_now_at_level_full_are_used(catalog):
    from apps.consent.services import record_consents

    yes = grant_consent(catalog, "yes")
    session = grant_consent(catalog, "session", level="session")
    withdrawn = grant_consent(catalog, "withdrawn")
    record_consents(tenant=catalog, subject_key=withdrawn,
                    decisions={"personalization": False})
    for name, key in (("yes", yes), ("session", session), ("withdrawn", withdrawn),
                      ("never", "f" * 64)):
        add_events(catalog, name, ["a", "b"], subject_key=key)
    data = snapshot_training_data(tenant=catalog)
    assert data.user_keys == [yes]
    assert data.stats["subjects_excluded_by_consent"] == 3


def test_a_purpose_per_event_type_is_respected(catalog):
    EventType.objects.for_tenant(catalog).filter(code="view").update(purpose="analytics_x")
    key = grant_consent(catalog, "s")
    add_events(catalog, "s", ["a"], type="view", subject_key=key)
    add_events(catalog, "s", ["b"], type="purchase", subject_key=key, start_minutes_ago=5)
    data = snapshot_training_data(tenant=catalog)
    assert len(_weights(data, key)) == 1  # the view's purpose is not consented


def test_events_outside_retention_and_inactive_types_are_ignored(catalog):
    catalog.settings = {"event_retention_days": 30}
    catalog.save()
    EventType.objects.for_tenant(catalog).filter(code="click").update(is_active=False)
    key = grant_consent(catalog, "s")
    add_events(catalog, "s", ["a"], subject_key=key,
               start_minutes_ago=int(timedelta(days=40).total_seconds() // 60))
    add_events(catalog, "s", ["b"], type="click", subject_key=key)
    add_events(catalog, "s", ["c"], subject_key=key, start_minutes_ago=10)
    data = snapshot_training_data(tenant=catalog)
    assert data.matrix.nnz == 1
    assert data.consent_snapshot_at <= timezone.now()


def test_the_same_data_gives_the_same_matrix(catalog):
    for n in range(5):
        key = grant_consent(catalog, f"s{n}")
        add_events(catalog, f"s{n}", ["a", "b", "c"][: 1 + n % 3], subject_key=key,
                   start_minutes_ago=100 - n)
    first, second = (snapshot_training_data(tenant=catalog) for _ in range(2))
    assert first.user_keys == sorted(first.user_keys) == second.user_keys
    assert (first.matrix != second.matrix).nnz == 0
    np.testing.assert_array_equal(first.last_seen, second.last_seen)


def _portable(tenant):
    from apps.events.selectors import list_events
    from apps.modeling.services.dataset import _stream_rows

    codes = sorted(EventType.objects.for_tenant(tenant).values_list("code", flat=True))
    since = timezone.now() - timedelta(days=400)
    rows = list_events(tenant=tenant, since=since).filter(type__in=codes)
    return _stream_rows(rows, {c: n for n, c in enumerate(codes)}, None), codes, since


def test_the_postgresql_reader_gives_the_portable_paths_rows(catalog):
    """Keys with leading and trailing zero bytes, several types, values, repeated items:
    the binary-record reader numbers, sums and dates exactly like the portable stream."""
    from django.db import connection

    from apps.modeling.services.dataset import _read_postgres

    if connection.vendor != "postgresql":
        pytest.skip("the binary-record reader is PostgreSQL's")
    keys = ["00" + "1" * 62, "ab" * 31 + "00", "0102030405060708" + "0" * 48, "f" * 64,
            "0" * 64]
    for n, key in enumerate(keys):
        add_events(catalog, f"s{n}", ["a", "b", "a"], type="view", subject_key=key)
        add_events(catalog, f"s{n}", ["c"], type="rating", value=2.5 + n, subject_key=key,
                   start_minutes_ago=30)
    (portable_keys, portable, count), codes, since = _portable(catalog)
    read = _read_postgres(catalog, codes, since)
    assert read is not None
    fast_keys, fast, fast_count = read
    assert fast_keys == sorted(keys)
    assert sorted(portable_keys) == fast_keys
    assert fast_count == 20  # events read
    assert count == 15  # (subject, item, type) groups streamed
    rank = np.array([fast_keys.index(k) for k in portable_keys])
    mine = sorted(zip(fast[0].tolist(), *(a.tolist() for a in fast[1:]), strict=True))
    theirs = sorted(zip(rank[portable[0]].tolist(), *(a.tolist() for a in portable[1:]),
                        strict=True))
    assert mine == theirs


def test_keys_sharing_their_first_16_characters_fall_back_to_the_portable_path(catalog):
    from django.db import connection

    from apps.modeling.services.dataset import _read_postgres

    if connection.vendor != "postgresql":
        pytest.skip("the binary-record reader is PostgreSQL's")
    twins = ["0" * 16 + "a" * 48, "0" * 16 + "b" * 48]
    for n, key in enumerate(twins):
        grant_consent(catalog, f"twin{n}")
        add_events(catalog, f"twin{n}", ["a", "b"], subject_key=key)
    (_, _, _), codes, since = _portable(catalog)
    assert _read_postgres(catalog, codes, since) is None
    data = snapshot_training_data(tenant=catalog)
    assert data.stats["subjects_seen"] == 2


def test_a_key_that_is_not_hex_falls_back_to_the_portable_path(catalog):
    from django.db import connection

    from apps.modeling.services.dataset import _read_postgres

    if connection.vendor != "postgresql":
        pytest.skip("the binary-record reader is PostgreSQL's")
    add_events(catalog, "odd", ["a"], subject_key="z" * 64)
    add_events(catalog, "short", ["b"], subject_key="ab" * 8)
    (_, _, _), codes, since = _portable(catalog)
    assert _read_postgres(catalog, codes, since) is None
    assert Item.objects.for_tenant(catalog).count() == 3  # the transaction is still usable
    data = snapshot_training_data(tenant=catalog)  # through the portable path
    assert data.stats["events_aggregated_rows"] == 2


@pytest.mark.django_db(transaction=True)
def test_consent_evaluated_beside_the_aggregation_gives_the_sequential_snapshot(mocker):
    """Outside a transaction, on PostgreSQL, consent is evaluated on a second connection
    while numpy aggregates: same matrix, same subjects left out, as evaluated in line."""
    import threading

    from django.db import connection, transaction

    from apps.consent.services import record_consents
    from apps.modeling.services import dataset
    from tests.factories.tenants import TenantFactory

    if connection.vendor != "postgresql":
        pytest.skip("the binary-record reader and a second connection are PostgreSQL's")
    tenant = TenantFactory()
    add_items(tenant, ["a", "b", "c"])
    for n in range(30):
        key = grant_consent(tenant, f"s{n}")
        add_events(tenant, f"s{n}", ["a", "b", "c"][: 1 + n % 3], subject_key=key)
        if n % 4 == 0:
            record_consents(tenant=tenant, subject_key=key,
                            decisions={"personalization": False})
    threads: list[str] = []
    original = dataset._evaluate_consent

    def evaluate(*args):
        threads.append(threading.current_thread().name)
        return original(*args)

    mocker.patch.object(dataset, "_evaluate_consent", side_effect=evaluate)

    beside = snapshot_training_data(tenant=tenant)
    with transaction.atomic():
        in_line = snapshot_training_data(tenant=tenant)

    assert threads[0].startswith("consent")
    assert threads[1] == threading.current_thread().name
    assert beside.user_keys == in_line.user_keys
    assert len(beside.user_keys) == 30 - 8
    assert (beside.matrix != in_line.matrix).nnz == 0
    assert np.array_equal(beside.last_seen, in_line.last_seen)


@pytest.mark.django_db(transaction=True)
def test_two_readers_share_one_snapshot_and_give_the_one_reader_matrix(mocker):
    """A large table is read by two server processes: the odd chunks on a second connection
    that imports the first one's snapshot. An event committed between the export and the
    import is seen by neither; chunk order and the matrix are the single reader's."""
    import threading

    from django.db import connection, transaction

    from apps.modeling.services import dataset
    from tests.factories.tenants import TenantFactory

    if connection.vendor != "postgresql":
        pytest.skip("the binary-record reader and a second connection are PostgreSQL's")
    tenant = TenantFactory()
    add_items(tenant, ["a", "b", "c", "d"])
    keys = [grant_consent(tenant, f"s{n}") for n in range(40)]
    for n, key in enumerate(keys):
        add_events(tenant, f"s{n}", ["a", "b", "c", "d"][n % 4:], subject_key=key)
    connection.cursor().execute("ANALYZE events_event")  # the planner reads the table
    mocker.patch.object(dataset, "_TWO_READERS_FROM_BYTES", 0)
    mocker.patch.object(dataset, "_CHUNK_BYTES", 1)  # a chunk per table block
    readers: list[tuple[str, list[dict[str, str]]]] = []
    original = dataset._fetch_chunks_in_snapshot

    def import_after_a_commit(snapshot, statement, params, chunks):
        def write() -> None:
            try:
                add_events(tenant, "s0", ["a"] * 5, subject_key=keys[0])
            finally:
                connection.close()

        writer = threading.Thread(target=write)
        writer.start()
        writer.join()
        readers.append((threading.current_thread().name, list(chunks)))
        return original(snapshot, statement, params, chunks)

    mocker.patch.object(dataset, "_fetch_chunks_in_snapshot", side_effect=import_after_a_commit)
    settings_seen: list[tuple[str, str]] = []
    fetch = dataset._fetch_chunks

    def fetch_noting_the_settings(*args):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('plan_cache_mode'), "
                           "current_setting('synchronize_seqscans')")
            settings_seen.append(cursor.fetchone())
        return fetch(*args)

    mocker.patch.object(dataset, "_fetch_chunks", side_effect=fetch_noting_the_settings)

    two = snapshot_training_data(tenant=tenant)
    assert settings_seen == [("force_custom_plan", "off")] * 2  # both readers
    (thread, odd), = readers
    assert thread.startswith("consent")
    assert [chunk["low"] for chunk in odd] == [f"({n},0)" for n in range(1, 2 * len(odd), 2)]
    assert odd[-1]["high"] == dataset._END_OF_TABLE
    assert two.stats["events_aggregated_rows"] == 100
    with transaction.atomic():  # in a caller's transaction: one reader
        one = snapshot_training_data(tenant=tenant)
    assert len(readers) == 1
    assert one.stats["events_aggregated_rows"] == 105  # the late events, now committed
    assert one.user_keys == two.user_keys
    late = one.user_keys.index(keys[0])
    assert one.matrix[late].sum() > two.matrix[late].sum()
    others = np.arange(len(one.user_keys)) != late
    assert (one.matrix[others] != two.matrix[others]).nnz == 0


@pytest.mark.parametrize("pages", [0, 1, 15_903, 15_904, 15_905, 133_000, 1_000_000])
@pytest.mark.parametrize("even", [False, True])
def test_block_ranges_cover_the_table_in_order_and_bound_every_chunk(pages, even):
    from apps.modeling.services.dataset import (
        _CHUNK_BYTES,
        _END_OF_TABLE,
        _EVENT_RECORD,
        _MAX_ROWS_PER_PAGE,
        _block_ranges,
    )

    ranges = _block_ranges(pages, even=even)
    block = [(int(r["low"][1:].split(",")[0]), int(r["high"][1:].split(",")[0]))
             for r in ranges]
    assert block[0][0] == 0
    assert ranges[-1]["high"] == _END_OF_TABLE
    assert all(a[1] == b[0] for a, b in pairwise(block))
    assert all((high - low) * _MAX_ROWS_PER_PAGE * _EVENT_RECORD.itemsize <= _CHUNK_BYTES
               for low, high in block[:-1])
    assert block[-1][0] <= max(pages, 1)  # the open range starts at the table's end at most
    assert not even or len(ranges) % 2 == 0


def test_a_small_share_of_a_large_table_is_read_through_an_index_in_one_chunk(
        tenant, other_tenant, mocker):
    """Block ranges suit a tenant the planner reads from the table; a small tenant is read
    in one query through an index (a range each would walk the whole index each time)."""
    from django.db import connection

    from apps.modeling.services import dataset

    if connection.vendor != "postgresql":
        pytest.skip("the binary-record reader is PostgreSQL's")
    add_items(other_tenant, ["x"])
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO events_event (created_at, updated_at, event_id, subject_key, type,
                                      value, occurred_at, properties, tenant_id, item_id)
            SELECT now(), now(), 'e' || g, md5(g::text) || md5(g::text), 'purchase', NULL,
                   now() - interval '1 day', '{}', %s, (SELECT id FROM events_item
                                                        WHERE tenant_id = %s)
            FROM generate_series(1, 30000) g""", [other_tenant.pk, other_tenant.pk])
    add_items(tenant, ["a", "b"])
    for n in range(10):
        add_events(tenant, f"s{n}", ["a", "b"])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_event")
    mocker.patch.object(dataset, "_CHUNK_BYTES", 1)  # would be a chunk per block
    fetched = mocker.spy(dataset, "_fetch_chunks")
    (_, _, _), codes, since = _portable(tenant)
    keys, _, events = dataset._read_postgres(tenant, codes, since)
    assert events == 20
    assert len(keys) == 10
    (_, _, chunks), = (call.args for call in fetched.call_args_list)
    assert chunks == [{"low": "(0,0)", "high": dataset._END_OF_TABLE}]


@pytest.mark.parametrize("seed", range(5))
def test_stable_groups_is_a_stable_sort_of_the_keys(seed):
    from apps.modeling.services.dataset import _stable_groups

    rng = np.random.default_rng(seed)
    key = rng.integers(0, [50, 2**40, 2**62][seed % 3], size=5000)
    order, starts, ordered = _stable_groups(key)
    assert np.array_equal(order, np.argsort(key, kind="stable"))
    assert np.array_equal(ordered, key[order])
    assert np.array_equal(starts, np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]))


@pytest.mark.parametrize("collide", ["none", "top_bits_in_order", "top_bits_interleaved"])
def test_subjects_are_numbered_in_key_order_whatever_the_prefixes_share(collide):
    from apps.modeling.services.dataset import _number_subjects

    rng = np.random.default_rng(1)
    distinct = np.unique(rng.integers(0, 2**63, size=300, dtype=np.int64).astype(np.uint64)
                         << np.uint64(1))
    if collide != "none":  # two subjects equal in all but the lowest bit
        distinct = np.unique(np.r_[distinct, distinct[7] | np.uint64(1)])
    events = rng.integers(0, len(distinct), size=4000)
    if collide == "top_bits_in_order":  # every event of one comes before the other's
        twins = np.isin(distinct[events], [distinct[7], distinct[7] | np.uint64(1)])
        events[twins] = np.sort(events[twins])
    prefix = distinct[events]
    subject, sample = _number_subjects(prefix)
    expected = np.searchsorted(np.unique(prefix), prefix)
    assert np.array_equal(subject, expected)
    assert np.array_equal(prefix[sample], np.unique(prefix))
