"""Differentially private popular items (cold start) with a per-tenant budget ledger.

The guarantee and its accounting are stated in docs/modeling.md ("Differentially private
popular items"); in short:

* **Domain.** The categories counted are the tenant's whole catalog (every ``Item``, the
  ones nobody interacted with included), a public input of the release. Were the domain the
  items of the training snapshot, one subject's rare item would be a category only when they
  are in the data: it would appear in about half of the releases with them and never
  without. Over the catalog, a rare item's count is zero without them and its noise masks
  the difference.
* **Bound.** Each subject contributes their ``L`` most recent distinct items, one count
  each, so adding or removing a subject changes at most ``L`` rows of the counted data
  (symmetric distance ``L``).
* **Mechanism.** OpenDP counts per catalog item (``make_count_by_categories``, L1 stability
  from its own map) and adds discrete Laplace noise (``then_laplace`` on integers); the
  scale is found by ``binary_search_param`` so that the measurement's own privacy map gives
  ``ε`` at ``d_in = L``: the noisy histogram is ``ε``-DP at the user level. Keeping the
  ``RELEASED_ITEMS`` best of the active items with a positive noisy count is
  post-processing of that histogram (activity is catalog data, public too).
* **Budget.** Releases compose (basic composition): the ε of the releases of the last
  ``dp_budget_window_days`` days may not exceed ``dp_budget_total``. A release that would
  is refused and the previous one keeps serving. The check and the ledger row are written
  under the tenant's serving-state row lock, so concurrent releases never overspend.
* **Reuse.** A release whose exact input (catalog, activity flags, ``ε``, ``L`` and the
  bounded counts) matches an earlier release's is not drawn again: the earlier noisy values
  are served again (post-processing, no ε), recorded as a ledger row with ``ε = 0``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from apps.audit import services as audit
from apps.events.selectors import list_items
from apps.modeling.models import ModelVersion, PrivacyBudgetEntry, ServingState
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize

logger = logging.getLogger("modeling.popularity")

RELEASED_ITEMS = 200
MECHANISM = "OpenDP make_count_by_categories >> then_laplace (discrete Laplace), catalog domain"
DEFAULT_BUDGET_TOTAL = 10.0
DEFAULT_BUDGET_WINDOW_DAYS = 365
#: Names the inputs hashed into a fingerprint; change it when they change.
FINGERPRINT_VERSION = "dp-popular-v1"
#: Float slack of the budget check (ε values come from OpenDP's map, at most the ε asked).
BUDGET_SLACK = 1e-9


@dataclass(frozen=True)
class Domain:
    """The public categories of a release: the tenant's catalog."""

    item_ids: np.ndarray   # Item pks, sorted (int64); category n is item_ids[n]
    active: np.ndarray     # bool, aligned: inactive items are never released

    def __len__(self) -> int:
        return len(self.item_ids)


def catalog_domain(*, tenant: Tenant) -> Domain:
    """Every item of the tenant's catalog, interacted with or not."""
    rows = np.array(list(list_items(tenant=tenant).order_by("pk").values_list(
        "pk", "is_active")), dtype=np.int64).reshape(-1, 2)
    return Domain(item_ids=rows[:, 0].copy(), active=rows[:, 1].astype(bool))


def bounded_contributions(matrix: Any, last_seen: np.ndarray, bound: int,
                          rank: np.ndarray | None = None) -> np.ndarray:
    """Column indices of each row's ``bound`` most recent items, concatenated."""
    from apps.modeling.services.algorithms import recency_rank

    rank = recency_rank(matrix, last_seen) if rank is None else rank
    return matrix.indices[rank < bound].astype(np.int64)


def domain_values(columns: np.ndarray, item_ids: np.ndarray, domain: Domain) -> np.ndarray:
    """The catalog positions of snapshot columns. An item missing from the catalog (events
    refer to items, and an item is deleted only while no event does, so none should be) is
    outside the domain and not counted: dropping it is a per-row filter, which keeps the
    symmetric distance between neighbours at most ``L``."""
    items = item_ids[columns]
    at = np.minimum(np.searchsorted(domain.item_ids, items), max(len(domain) - 1, 0))
    found = domain.item_ids[at] == items if len(domain) else np.zeros(len(items), bool)
    return at[found].astype(np.int64)


def _measurement(n_categories: int, scale: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    counting = dp.t.make_count_by_categories(
        dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.symmetric_distance(),
        categories=np.arange(n_categories, dtype=np.int64), null_category=False,
        MO=dp.L1Distance[dp.i64], TOA=dp.i64)
    return counting >> dp.m.then_laplace(scale=scale)


@lru_cache(maxsize=64)
def _noise_scale(n_categories: int, epsilon: float, bound: int) -> float:
    """The smallest scale whose measurement OpenDP maps to at most ``epsilon`` at
    ``d_in = bound`` (a binary search of some 50 constructions, hence the cache)."""
    import opendp.prelude as dp

    return float(dp.binary_search_param(lambda scale: _measurement(n_categories, scale),
                                        d_in=bound, d_out=epsilon))


def dp_counts(values: np.ndarray, n_categories: int, *, epsilon: float, bound: int
              ) -> tuple[np.ndarray, float, float]:
    """``(noisy counts, scale, ε as mapped by OpenDP)`` for ``values`` in
    ``range(n_categories)``, each subject contributing at most ``bound`` values."""
    scale = _noise_scale(n_categories, epsilon, bound)
    release = _measurement(n_categories, scale)
    # numpy arrays cross into OpenDP in one copy; a list is checked value by value
    # (0.8 s for a 2M-interaction snapshot).
    noisy = np.asarray(release(np.ascontiguousarray(values, dtype=np.int64)), dtype=np.int64)
    return noisy, scale, float(release.map(bound))


def released_items(noisy: np.ndarray, domain: Domain,
                   limit: int = RELEASED_ITEMS) -> list[list[int]]:
    """Post-processing of the noisy histogram: ``[[item pk, noisy count], ...]`` of the
    ``limit`` best active items with a positive noisy count, best first (ties by pk). It
    reads only the noisy counts and the public catalog, never the true counts."""
    candidates = np.flatnonzero(domain.active & (noisy > 0))
    best = candidates[np.argsort(-noisy[candidates], kind="stable")[:limit]]
    return [[int(domain.item_ids[i]), int(noisy[i])] for i in best]


def popular_release(values: np.ndarray, domain: Domain, *, epsilon: float, bound: int
                    ) -> tuple[list[list[int]], float, float]:
    """The mechanism, start to end: ``(released items, noise scale, ε)`` for the bounded
    contributions ``values`` (catalog positions, at most ``bound`` per subject)."""
    noisy, scale, spent = dp_counts(values, len(domain), epsilon=epsilon, bound=bound)
    return released_items(noisy, domain), scale, spent


def release_input(*, tenant: Tenant, matrix: Any, last_seen: np.ndarray,
                  item_ids: np.ndarray, bound: int, rank: np.ndarray | None = None
                  ) -> tuple[np.ndarray, Domain]:
    """``(values, domain)``: the tenant's catalog, read now, and the snapshot's bounded
    contributions as catalog positions, what :func:`popular_release` takes."""
    domain = catalog_domain(tenant=tenant)
    return domain_values(bounded_contributions(matrix, last_seen, bound, rank), item_ids,
                         domain), domain


def release_fingerprint(*, tenant: Tenant, values: np.ndarray, domain: Domain,
                        epsilon: float, bound: int) -> str:
    """Identifies a release's exact input: equal fingerprints, equal output distribution.
    Keyed with the tenant's secret (HMAC): the ledger outlives erasures, and an unkeyed hash
    of the counts would let whoever reads it test guesses about an erased subject's items."""
    digest = hashlib.sha256()
    for part in (FINGERPRINT_VERSION.encode(), float(epsilon).hex().encode(),
                 str(int(bound)).encode(), domain.item_ids.astype("<i8").tobytes(),
                 np.packbits(domain.active).tobytes(),
                 np.bincount(values, minlength=len(domain)).astype("<i8").tobytes()):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return pseudonymize(tenant, f"{FINGERPRINT_VERSION}:{digest.hexdigest()}")


def budget_spent(*, tenant: Tenant, window_days: int = DEFAULT_BUDGET_WINDOW_DAYS) -> float:
    """Sum of ε over the tenant's releases of the last ``window_days`` days (basic
    composition over a rolling window; reuses add 0)."""
    since = timezone.now() - timedelta(days=window_days)
    total = (PrivacyBudgetEntry.objects.for_tenant(tenant).filter(created_at__gte=since)
             .aggregate(total=Sum("epsilon")))
    return float(total["total"] or 0.0)


def _lock_ledger(tenant: Tenant) -> None:
    """The tenant's serving-state row lock (PostgreSQL ``SELECT ... FOR UPDATE``), held to
    the end of the transaction: it serializes registrations, activations and releases, so
    the budget check and the ledger row are one step."""
    # training.serving_state(lock=True), which this module cannot import (training
    # imports it).
    ServingState.objects.bulk_create([ServingState(tenant_id=tenant.pk)],
                                     ignore_conflicts=True)
    ServingState.objects.for_tenant(tenant).select_for_update().get()


@transaction.atomic
def release_popular_items(
    *, tenant: Tenant, matrix: Any, last_seen: np.ndarray, item_ids: np.ndarray,
    epsilon: float, bound: int, budget_total: float = DEFAULT_BUDGET_TOTAL,
    window_days: int = DEFAULT_BUDGET_WINDOW_DAYS, model_version: ModelVersion | None = None,
    rank: np.ndarray | None = None,
) -> PrivacyBudgetEntry | None:
    """One DP release of popular items from a training snapshot, over the tenant's catalog,
    recorded in the ledger with an audit entry.

    Returns the new ledger row: a fresh release, or (``reuse_of`` set, ``ε = 0``) the reuse
    of an earlier release with the same fingerprint. ``None`` when nothing is released and
    the previous release keeps serving: no data, an empty catalog, or a release that would
    take the ε spent in the last ``window_days`` days past ``budget_total`` (refused,
    audited and logged, no identifier in either)."""
    if matrix.nnz == 0 or len(item_ids) == 0:
        return None
    values, domain = release_input(tenant=tenant, matrix=matrix, last_seen=last_seen,
                                   item_ids=item_ids, bound=bound, rank=rank)
    if len(domain) == 0:
        return None
    fingerprint = release_fingerprint(tenant=tenant, values=values, domain=domain,
                                      epsilon=epsilon, bound=bound)
    _lock_ledger(tenant)
    ledger = PrivacyBudgetEntry.objects.for_tenant(tenant).filter(
        kind=PrivacyBudgetEntry.Kind.POPULAR_ITEMS)
    same = ledger.filter(data_fingerprint=fingerprint, reuse_of__isnull=True).first()
    if same is not None:
        entry = PrivacyBudgetEntry.objects.create(
            tenant=tenant, kind=same.kind, epsilon=0.0, mechanism=same.mechanism,
            contribution_bound=same.contribution_bound, noise_scale=same.noise_scale,
            subjects=same.subjects, categories=same.categories, model_version=model_version,
            released=same.released, data_fingerprint=fingerprint, reuse_of=same)
        audit.record(tenant, "modeling.dp_release_reused", None, entry,
                     {"reuse_of": same.pk, "epsilon": 0.0})
        return entry
    spent_before = budget_spent(tenant=tenant, window_days=window_days)
    if spent_before + epsilon > budget_total + BUDGET_SLACK:
        logger.warning("modeling.dp_release_refused tenant=%s spent=%.6f epsilon=%.6f "
                       "budget=%.6f window_days=%s", tenant.pk, spent_before, epsilon,
                       budget_total, window_days)
        audit.record(tenant, "modeling.dp_release_refused", None, ("modeling.budget", ""),
                     {"epsilon": epsilon, "spent": round(spent_before, 9),
                      "budget_total": budget_total, "window_days": window_days})
        return None
    released, scale, spent = popular_release(values, domain, epsilon=epsilon, bound=bound)
    entry = PrivacyBudgetEntry.objects.create(
        tenant=tenant, kind=PrivacyBudgetEntry.Kind.POPULAR_ITEMS, epsilon=spent,
        mechanism=MECHANISM, contribution_bound=bound, noise_scale=scale,
        subjects=int(matrix.shape[0]), categories=len(domain), model_version=model_version,
        released=released, data_fingerprint=fingerprint)
    audit.record(tenant, "modeling.dp_release", None, entry,
                 {"epsilon": spent, "contribution_bound": bound, "noise_scale": scale,
                  "items": len(domain), "spent_in_window": round(spent_before + spent, 9),
                  "window_days": window_days})
    return entry
