"""Differentially private popular items and the privacy-budget ledger."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import time_machine
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.events.models import Item
from apps.events.services import deactivate_item
from apps.modeling.config import modeling_settings
from apps.modeling.models import PrivacyBudgetEntry
from apps.modeling.services import (
    budget_spent,
    recommend_for_session,
    release_popular_items,
    train_model,
)
from apps.modeling.services.popularity import (
    Domain,
    bounded_contributions,
    catalog_domain,
    domain_values,
    dp_counts,
    popular_release,
    release_fingerprint,
    release_input,
    released_items,
)
from tests.factories.modeling import add_events, add_items, configure, planted_dataset


def test_contributions_are_bounded_to_each_subjects_most_recent_items():
    import scipy.sparse as sp

    matrix = sp.csr_matrix(np.array([[1, 1, 1, 1], [0, 1, 0, 0]], dtype=np.float32))
    last = np.array([1.0, 4.0, 3.0, 2.0, 9.0])  # aligned with matrix.data
    assert sorted(bounded_contributions(matrix, last, 2).tolist()) == [1, 1, 2]


def test_opendp_maps_the_release_to_the_requested_epsilon():
    values = np.repeat(np.arange(5), [50, 40, 30, 20, 10])
    noisy, scale, epsilon = dp_counts(values, 5, epsilon=0.5, bound=3)
    assert epsilon == pytest.approx(0.5, rel=1e-6)
    assert scale == pytest.approx(6.0, rel=1e-3)  # L1 sensitivity 3 / ε 0.5
    assert noisy.dtype == np.int64
    assert np.abs(noisy - np.array([50, 40, 30, 20, 10])).max() < 100


def test_noise_is_really_added():
    values = np.repeat(np.arange(50), 20)
    noisy = [dp_counts(values, 50, epsilon=1.0, bound=1)[0] for _ in range(3)]
    assert not all(np.array_equal(noisy[0], other) for other in noisy[1:])


# --- The domain: the tenant's whole catalog --------------------------------------------------


def _snapshot(rows: list[list[int]], item_ids: list[int]) -> tuple[Any, np.ndarray]:
    """A training-snapshot matrix over ``item_ids`` (its columns, as the dataset builder
    numbers the items that occur), each row's items newest last."""
    import scipy.sparse as sp

    dense = np.zeros((len(rows), len(item_ids)), dtype=np.float32)
    for r, cols in enumerate(rows):
        dense[r, cols] = 1
    matrix = sp.csr_matrix(dense)
    last = np.zeros(matrix.nnz)
    for r in range(len(rows)):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        order = {c: n for n, c in enumerate(rows[r])}
        last[start:end] = [order[c] for c in matrix.indices[start:end]]
    return matrix, np.asarray(item_ids, dtype=np.int64)


def test_the_domain_is_every_catalog_item_interacted_with_or_not(tenant):
    add_items(tenant, [f"i{n}" for n in range(6)])
    deactivate_item(tenant=tenant, external_id="i5")
    pks = dict(Item.objects.for_tenant(tenant).values_list("external_id", "pk"))
    # The snapshot holds i1 and i3 only (columns 0 and 1).
    matrix, item_ids = _snapshot([[0, 1], [1]], [pks["i1"], pks["i3"]])
    values, domain = release_input(tenant=tenant, matrix=matrix,
                                   last_seen=np.zeros(matrix.nnz), item_ids=item_ids, bound=5)
    assert domain.item_ids.tolist() == sorted(pks.values())
    assert domain.active.tolist() == [n != 5 for n in range(6)]
    position = {pk: n for n, pk in enumerate(domain.item_ids.tolist())}
    assert sorted(values.tolist()) == sorted([position[pks["i1"]], position[pks["i3"]],
                                              position[pks["i3"]]])


def test_snapshot_items_missing_from_the_catalog_are_not_counted():
    domain = Domain(item_ids=np.array([10, 20, 30]), active=np.ones(3, bool))
    columns = np.array([0, 1, 2, 1])
    assert domain_values(columns, np.array([20, 25, 30]), domain).tolist() == [1, 2]


def test_the_release_keeps_the_best_active_positive_noisy_counts_only():
    domain = Domain(item_ids=np.array([10, 20, 30, 40, 50]),
                    active=np.array([True, True, False, True, True]))
    noisy = np.array([3, 9, 50, 0, -4])
    assert released_items(noisy, domain) == [[20, 9], [10, 3]]
    assert released_items(noisy, domain, limit=1) == [[20, 9]]


@pytest.fixture
def planted(tenant):
    configure(tenant)
    return planted_dataset(tenant)


def test_items_nobody_interacted_with_are_released_and_served(planted):
    """With a small ε, noise alone lifts catalog items without any interaction into the
    release, and serving answers with them although the model does not know them."""
    add_items(planted.tenant, [f"never-{n}" for n in range(40)])
    configure(planted.tenant, dp_epsilon=0.01, dp_contribution_bound=1)
    train_model(tenant=planted.tenant)
    entry = PrivacyBudgetEntry.objects.for_tenant(planted.tenant).get()
    assert entry.categories == Item.objects.for_tenant(planted.tenant).count()
    never = set(Item.objects.for_tenant(planted.tenant).filter(
        external_id__startswith="never-").values_list("pk", flat=True))
    assert never & {pk for pk, _ in entry.released}
    served = recommend_for_session(tenant=planted.tenant, recent_items=["unknown"], n=100)
    assert served.reason == "no_known_items"
    assert any(i["item"].startswith("never-") for i in served.items)


# --- Neighbouring datasets -------------------------------------------------------------------


def _clopper_pearson(hits: int, n: int, alpha: float) -> tuple[float, float]:
    """Two-sided interval holding the true probability with chance at least 1 - 2·alpha."""
    from scipy.stats import beta

    low = 0.0 if hits == 0 else float(beta.ppf(alpha, hits, n - hits + 1))
    high = 1.0 if hits == n else float(beta.ppf(1 - alpha, hits + 1, n - hits))
    return low, high


def test_one_subject_with_a_rare_item_moves_the_release_by_at_most_e_to_the_epsilon(tenant):
    """D: 40 subjects over the 20 common items of a 30-item catalog; D' = D plus one
    subject holding only the rare item. Released many times on each, the chance that the
    rare item is released (and that it is not) may differ at most by the factor e^ε, up to
    a Clopper-Pearson slack at 1e-6. Were the domain the snapshot's items, the rare item
    could never be released without that subject, and this would fail."""
    epsilon, bound, runs = 1.0, 3, 3000
    add_items(tenant, [f"i{n:02d}" for n in range(30)])
    pks = dict(Item.objects.for_tenant(tenant).values_list("external_id", "pk"))
    rng = np.random.default_rng(7)
    common = [sorted(rng.choice(20, size=3, replace=False).tolist()) for _ in range(40)]
    rare = pks["i29"]
    without_matrix, without_ids = _snapshot(common, [pks[f"i{n:02d}"] for n in range(20)])
    with_matrix, with_ids = _snapshot([*common, [20]],
                                      [pks[f"i{n:02d}"] for n in range(20)] + [rare])
    hits = {}
    for label, matrix, item_ids in (("D", without_matrix, without_ids),
                                    ("D'", with_matrix, with_ids)):
        values, domain = release_input(tenant=tenant, matrix=matrix,
                                       last_seen=np.zeros(matrix.nnz), item_ids=item_ids,
                                       bound=bound)
        hits[label] = sum(
            rare in {pk for pk, _ in popular_release(values, domain, epsilon=epsilon,
                                                     bound=bound)[0]}
            for _ in range(runs))
    bound_factor = math.exp(epsilon)
    for a, b in (("D", "D'"), ("D'", "D")):
        for event in ("released", "not released"):
            hit_a = hits[a] if event == "released" else runs - hits[a]
            hit_b = hits[b] if event == "released" else runs - hits[b]
            low_a, _ = _clopper_pearson(hit_a, runs, 1e-6)
            _, high_b = _clopper_pearson(hit_b, runs, 1e-6)
            assert low_a <= bound_factor * high_b, (a, b, event, hits)
    assert 0 < hits["D"] < runs  # the rare item's zero count is masked by noise


# --- Settings, budget, reuse, refusal --------------------------------------------------------


def test_epsilon_per_release_comes_from_tenant_settings(tenant):
    configure(tenant, dp_epsilon=0.25, dp_contribution_bound=3)
    planted_dataset(tenant)
    version = train_model(tenant=tenant)
    entry = PrivacyBudgetEntry.objects.for_tenant(tenant).get()
    assert entry.epsilon == pytest.approx(0.25)
    assert entry.contribution_bound == 3
    assert entry.noise_scale == pytest.approx(12.0, rel=1e-3)
    assert entry.model_version_id == version.pk
    assert "OpenDP" in entry.mechanism
    assert entry.released
    assert all(count > 0 for _, count in entry.released)
    assert entry.reuse_of is None
    assert len(entry.data_fingerprint) == 64


@pytest.mark.parametrize("stored", [{}, {"dp_budget_total": None},
                                    {"dp_budget_total": -1, "dp_budget_window_days": 0}])
def test_every_tenant_has_a_default_budget(tenant, stored):
    tenant.settings = stored
    tenant.save(update_fields=["settings"])
    cfg = modeling_settings(tenant)
    assert (cfg.dp_budget_total, cfg.dp_budget_window_days) == (10.0, 365)


def _release(tenant, rows: list[list[int]], item_ids: list[int], **kwargs):
    matrix, ids = _snapshot(rows, item_ids)
    return release_popular_items(tenant=tenant, matrix=matrix, last_seen=np.zeros(matrix.nnz),
                                 item_ids=ids, epsilon=kwargs.pop("epsilon", 1.0),
                                 bound=kwargs.pop("bound", 2), **kwargs)


@pytest.fixture
def catalog_pks(tenant) -> list[int]:
    add_items(tenant, [f"c{n}" for n in range(8)])
    return list(Item.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True))


def test_the_default_budget_refuses_the_eleventh_release_and_the_last_keeps_serving(
        tenant, catalog_pks):
    entries = [_release(tenant, [[0, 1]] * (n + 1), catalog_pks[:2]) for n in range(10)]
    assert all(e is not None and e.reuse_of is None for e in entries)
    assert budget_spent(tenant=tenant) == pytest.approx(10.0)
    assert _release(tenant, [[0, 1]] * 11, catalog_pks[:2]) is None
    assert PrivacyBudgetEntry.objects.for_tenant(tenant).first() == entries[-1]
    refused = AuditEvent.objects.for_tenant(tenant).get(action="modeling.dp_release_refused")
    assert refused.details["budget_total"] == 10.0
    assert refused.details["window_days"] == 365


def test_the_budget_is_a_rolling_window(tenant, catalog_pks):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert _release(tenant, [[0]], catalog_pks, budget_total=1.0) is not None
        assert _release(tenant, [[1]], catalog_pks, budget_total=1.0) is None
    with time_machine.travel(start + timedelta(days=29), tick=False):
        assert _release(tenant, [[1]], catalog_pks, budget_total=1.0, window_days=30) is None
    with time_machine.travel(start + timedelta(days=31), tick=False):
        assert budget_spent(tenant=tenant, window_days=30) == 0.0
        assert budget_spent(tenant=tenant) == pytest.approx(1.0)
        assert _release(tenant, [[1]], catalog_pks, budget_total=1.0, window_days=30)


def test_unchanged_data_reuses_the_release_and_any_change_spends_again(tenant, catalog_pks):
    first = _release(tenant, [[0, 1], [1]], catalog_pks[:2])
    again = _release(tenant, [[0, 1], [1]], catalog_pks[:2])
    assert again.reuse_of == first
    assert again.epsilon == 0.0
    assert again.released == first.released
    assert budget_spent(tenant=tenant) == pytest.approx(1.0)
    assert AuditEvent.objects.for_tenant(tenant).filter(
        action="modeling.dp_release_reused").count() == 1
    changed = _release(tenant, [[0, 1], [0]], catalog_pks[:2])  # one count moved
    assert changed.reuse_of is None
    assert budget_spent(tenant=tenant) == pytest.approx(2.0)
    # Another ε or bound is another release, even on the same data.
    assert _release(tenant, [[0, 1], [0]], catalog_pks[:2], epsilon=0.5).reuse_of is None
    assert _release(tenant, [[0, 1], [0]], catalog_pks[:2], bound=1).reuse_of is None
    # Reuse needs no budget: with the budget spent, the same data is still served again.
    assert _release(tenant, [[0, 1], [1]], catalog_pks[:2], budget_total=0.0).reuse_of == first


def test_a_catalog_change_is_a_data_change(tenant, catalog_pks):
    first = _release(tenant, [[0, 1]], catalog_pks[:2])
    add_items(tenant, ["new"])
    assert _release(tenant, [[0, 1]], catalog_pks[:2]).reuse_of is None
    deactivate_item(tenant=tenant, external_id="c7")
    assert _release(tenant, [[0, 1]], catalog_pks[:2]).reuse_of is None
    fingerprints = PrivacyBudgetEntry.objects.for_tenant(tenant).values_list(
        "data_fingerprint", flat=True)
    assert first.data_fingerprint in fingerprints
    assert len(set(fingerprints)) == 3


def test_the_fingerprint_is_exact_and_keyed_per_tenant(tenant, other_tenant):
    domain = Domain(item_ids=np.arange(1, 6), active=np.ones(5, bool))
    values = np.array([0, 1, 1, 4])

    def fingerprint(t=tenant, v=values, d=domain, epsilon=1.0, bound=2):
        return release_fingerprint(tenant=t, values=v, domain=d, epsilon=epsilon, bound=bound)

    assert fingerprint() == fingerprint(v=values[::-1].copy())  # a multiset: order is moot
    others = [fingerprint(v=np.array([0, 1, 4, 4])), fingerprint(v=values[:3]),
              fingerprint(epsilon=1.0 + 1e-12), fingerprint(bound=3),
              fingerprint(d=Domain(item_ids=np.arange(1, 7), active=np.ones(6, bool))),
              fingerprint(d=Domain(item_ids=np.arange(1, 6),
                                   active=np.array([1, 1, 1, 1, 0], bool))),
              fingerprint(t=other_tenant)]
    assert fingerprint() not in others
    assert len(set(others)) == len(others)


def test_a_retrain_on_unchanged_data_spends_nothing(planted):
    first = train_model(tenant=planted.tenant)
    second = train_model(tenant=planted.tenant)
    entries = list(PrivacyBudgetEntry.objects.for_tenant(planted.tenant).order_by("pk"))
    assert [e.model_version_id for e in entries] == [first.pk, second.pk]
    assert entries[1].reuse_of == entries[0]
    assert budget_spent(tenant=planted.tenant) == pytest.approx(1.0)
    add_items(planted.tenant, ["fresh"])
    add_events(planted.tenant, planted.subjects[0], ["fresh"], start_minutes_ago=1)
    train_model(tenant=planted.tenant)
    assert budget_spent(tenant=planted.tenant) == pytest.approx(2.0)


def test_no_release_without_data(tenant):
    import scipy.sparse as sp

    empty = sp.csr_matrix((0, 0), dtype=np.float32)
    assert release_popular_items(tenant=tenant, matrix=empty, last_seen=np.zeros(0),
                                 item_ids=np.zeros(0, np.int64), epsilon=1.0, bound=1) is None


def test_the_domain_reads_an_empty_catalog(tenant):
    assert len(catalog_domain(tenant=tenant)) == 0
