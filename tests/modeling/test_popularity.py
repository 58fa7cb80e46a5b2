"""Differentially private popular items and the privacy-budget ledger."""

from __future__ import annotations

import numpy as np
import pytest

from apps.modeling.models import PrivacyBudgetEntry
from apps.modeling.services import budget_spent, release_popular_items, train_model
from apps.modeling.services.popularity import bounded_contributions, dp_counts
from tests.factories.modeling import configure, planted_dataset


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


def test_the_ledger_sums_spent_budget_and_a_cap_refuses_releases(tenant, other_tenant):
    configure(tenant, dp_budget_total=1.5)
    planted_dataset(tenant)
    train_model(tenant=tenant)
    train_model(tenant=tenant)  # second release would exceed 1.5: refused
    assert PrivacyBudgetEntry.objects.for_tenant(tenant).count() == 1
    assert budget_spent(tenant=tenant) == pytest.approx(1.0)
    assert budget_spent(tenant=other_tenant) == 0.0


def test_no_release_without_data(tenant):
    import scipy.sparse as sp

    empty = sp.csr_matrix((0, 0), dtype=np.float32)
    assert release_popular_items(tenant=tenant, matrix=empty, last_seen=np.zeros(0),
                                 item_ids=np.zeros(0, np.int64), epsilon=1.0, bound=1) is None
