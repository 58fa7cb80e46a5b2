"""Fifty concurrent DP releases of one tenant never overspend its budget, and fifty on the
same data spend it once. Meaningful on PostgreSQL, where the tenant's serving-state row lock
serializes the budget check and the ledger row; SQLite serializes every write transaction
itself (and an in-memory database cannot be shared between threads), so it is skipped."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from django.db import connection, connections

from apps.events.models import Item
from apps.modeling.models import PrivacyBudgetEntry
from apps.modeling.services import budget_spent, release_popular_items
from tests.factories.modeling import add_items
from tests.factories.tenants import TenantFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="needs PostgreSQL: row locks and a database shared by threads"),
]

WRITERS = 50


def _release_concurrently(tenant, subjects_of: list[int], budget_total: float
                          ) -> tuple[list[object], list[BaseException]]:
    """One thread per entry: a release of ε 1 over a snapshot of ``subjects_of[n]``
    subjects holding the first two catalog items (equal sizes, equal data)."""
    item_ids = np.array(sorted(Item.objects.for_tenant(tenant).values_list("pk", flat=True))[:2],
                        dtype=np.int64)
    barrier = threading.Barrier(len(subjects_of))
    results: list[object] = []
    errors: list[BaseException] = []

    def work(subjects: int) -> None:
        import scipy.sparse as sp

        try:
            matrix = sp.csr_matrix(np.ones((subjects, 2), dtype=np.float32))
            barrier.wait()
            results.append(release_popular_items(
                tenant=tenant, matrix=matrix, last_seen=np.zeros(matrix.nnz),
                item_ids=item_ids, epsilon=1.0, bound=2, budget_total=budget_total))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n,)) for n in subjects_of]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, errors


def test_fifty_concurrent_releases_spend_no_more_than_the_budget():
    tenant = TenantFactory()  # no serving-state row yet: the lock row is created concurrently
    add_items(tenant, ["a", "b", "c"])
    results, errors = _release_concurrently(tenant, list(range(1, WRITERS + 1)),
                                            budget_total=7.5)
    assert errors == []
    assert len(results) == WRITERS
    assert sum(r is not None for r in results) == 7
    entries = PrivacyBudgetEntry.objects.for_tenant(tenant)
    assert entries.count() == 7
    assert not entries.filter(reuse_of__isnull=False).exists()
    assert budget_spent(tenant=tenant) <= 7.5


def test_fifty_concurrent_releases_of_the_same_data_spend_once():
    tenant = TenantFactory()
    add_items(tenant, ["a", "b", "c"])
    results, errors = _release_concurrently(tenant, [5] * WRITERS, budget_total=10.0)
    assert errors == []
    entries = PrivacyBudgetEntry.objects.for_tenant(tenant)
    assert entries.count() == WRITERS
    fresh = entries.get(reuse_of__isnull=True)
    assert set(entries.exclude(pk=fresh.pk).values_list("reuse_of", flat=True)) == {fresh.pk}
    assert budget_spent(tenant=tenant) == pytest.approx(1.0)
