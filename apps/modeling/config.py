"""Per-tenant modeling settings (``Tenant.settings`` JSON) with the platform defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from apps.core.tenant_settings import Kind, TenantSetting, declared_setting
from apps.modeling import tenant_settings as ts
from apps.modeling.recommenders import algorithm_names, recommenders
from apps.modeling.recommenders.base import Setting
from apps.tenants.models import Tenant

# Setting name -> default, from the declarations (apps/modeling/tenant_settings.py, the one
# place each setting's type, range, default and help are declared; docs/modeling.md). The
# algorithms a tenant may choose are the registered ones (apps.modeling.recommenders); those
# that embed items are fitted whatever the choice (their factors back the bundle and the
# lineage export). Each algorithm declares its own settings (``Recommender.settings``: ALS's
# factors, regularization, alpha and iterations; BM25's K), registered from its class.
DEFAULTS: dict[str, Any] = {
    s.name: s.default for s in (
        ts.WEIGHTING, ts.ALGORITHMS, ts.SEARCH_SECONDS, ts.ACTIVATION_TOLERANCE,
        ts.HOLDOUT_FRACTION, ts.EVAL_MAX_USERS, ts.RANDOM_STATE, ts.THREADS, ts.MIN_SUPPORT,
        ts.RETRAIN_DEBOUNCE, ts.KEEP_ARTIFACTS, ts.MAX_CELL_WEIGHT, ts.MAX_SUBJECT_WEIGHT,
        ts.QUARANTINE_MULTIPLIER, ts.QUARANTINE_MAD_FACTOR, ts.QUARANTINE_MIN_EVENTS,
        ts.DP_EPSILON, ts.DP_CONTRIBUTION_BOUND, ts.DP_BUDGET_TOTAL, ts.DP_BUDGET_WINDOW_DAYS)}


@dataclass(frozen=True)
class ModelingSettings:
    weighting: str
    algorithms: tuple[str, ...]
    search_seconds: float
    activation_tolerance: float
    holdout_fraction: float
    eval_max_users: int
    random_state: int
    threads: int
    min_support: int
    retrain_debounce_seconds: int
    keep_artifacts: int
    max_cell_weight: float
    max_subject_weight: float
    quarantine_multiplier: float
    quarantine_mad_factor: float
    quarantine_min_events: int
    dp_epsilon: float
    dp_contribution_bound: int
    dp_budget_total: float
    dp_budget_window_days: int
    #: Every registered algorithm's own settings (``Recommender.settings``), by name.
    algorithm: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _algorithm_setting(tenant: Tenant, name: str, spec: Setting) -> Any:
    """An algorithm's own setting: through its declaration when the registry holds it (every
    algorithm discovered at start-up), else (an algorithm registered later, as tests do)
    from its ``Setting`` with the same rules."""
    declared = declared_setting(name)
    if declared is not None:
        return declared.read(tenant.settings)
    kind = Kind.INTEGER if spec.cast is int else Kind.NUMBER
    return TenantSetting(name=name, kind=kind, default=spec.default, help="", group="",
                         low=spec.low, high=spec.high).read(tenant.settings)


def modeling_settings(tenant: Tenant) -> ModelingSettings:
    """The tenant's modeling settings, each falling back to its default when unset, mistyped
    or out of range (a bad setting never breaks training)."""
    stored = tenant.settings

    chosen = ts.ALGORITHMS.read(stored)
    registered = algorithm_names()
    algorithms = tuple(a for a in registered
                       if isinstance(chosen, list | tuple) and a in chosen) or registered
    return ModelingSettings(
        weighting=ts.WEIGHTING.read(stored),
        algorithms=algorithms,
        search_seconds=ts.SEARCH_SECONDS.read(stored),
        activation_tolerance=ts.ACTIVATION_TOLERANCE.read(stored),
        holdout_fraction=ts.HOLDOUT_FRACTION.read(stored),
        eval_max_users=ts.EVAL_MAX_USERS.read(stored),
        random_state=ts.RANDOM_STATE.read(stored),
        threads=ts.THREADS.read(stored),
        min_support=ts.MIN_SUPPORT.read(stored),
        retrain_debounce_seconds=ts.RETRAIN_DEBOUNCE.read(stored),
        keep_artifacts=ts.KEEP_ARTIFACTS.read(stored),
        max_cell_weight=ts.MAX_CELL_WEIGHT.read(stored),
        max_subject_weight=ts.MAX_SUBJECT_WEIGHT.read(stored),
        quarantine_multiplier=ts.QUARANTINE_MULTIPLIER.read(stored),
        quarantine_mad_factor=ts.QUARANTINE_MAD_FACTOR.read(stored),
        quarantine_min_events=ts.QUARANTINE_MIN_EVENTS.read(stored),
        dp_epsilon=ts.DP_EPSILON.read(stored),
        dp_contribution_bound=ts.DP_CONTRIBUTION_BOUND.read(stored),
        # Every tenant has a budget: unset, null (the old "no cap") or out of range, the
        # default applies.
        dp_budget_total=ts.DP_BUDGET_TOTAL.read(stored),
        dp_budget_window_days=ts.DP_BUDGET_WINDOW_DAYS.read(stored),
        algorithm={name: _algorithm_setting(tenant, name, spec)
                   for recommender in recommenders()
                   for name, spec in recommender.settings.items()},
    )
