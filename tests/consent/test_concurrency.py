"""Two concurrent updates for one subject both land in the ledger, in order, and the current
state is the last one. Meaningful on PostgreSQL, where the subject row lock serializes them;
SQLite serializes every write transaction itself (and an in-memory database cannot be shared
between threads), so the test is skipped there."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from apps.consent.models import ConsentRecord, ConsentState
from apps.consent.services import record_consents
from tests.factories.consent import subject_key
from tests.factories.tenants import TenantFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="needs PostgreSQL: row locks and a database shared by threads"),
]

SK = subject_key("concurrent")


def _run_concurrently(tenant, decisions: list[bool]) -> list[BaseException]:
    barrier = threading.Barrier(len(decisions))
    errors: list[BaseException] = []

    def work(granted: bool) -> None:
        try:
            barrier.wait()
            record_consents(tenant=tenant, subject_key=SK,
                            decisions={"personalization": granted, "analytics": granted})
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(g,)) for g in decisions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.parametrize("writers", [2, 8])
def test_concurrent_updates_all_land_in_order_and_the_state_is_the_last(writers):
    tenant = TenantFactory()  # a brand-new subject: the lock row itself is created concurrently
    errors = _run_concurrently(tenant, [n % 2 == 0 for n in range(writers)])
    assert errors == []
    rows = list(ConsentRecord.objects.for_tenant(tenant).filter(subject_key=SK)
                .order_by("id").values_list("purpose__key", "granted", "captured_at"))
    assert len(rows) == 2 * writers
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)  # ledger order = commit order
    for call in range(writers):  # each call's two rows are adjacent: no interleaving
        assert rows[2 * call][1] == rows[2 * call + 1][1]
    last = {key: granted for key, granted, _ in rows}
    state = dict(ConsentState.objects.for_tenant(tenant).filter(subject_key=SK)
                 .values_list("purpose__key", "granted"))
    assert state == last
