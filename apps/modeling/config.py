"""Per-tenant modeling settings (``Tenant.settings`` JSON) with the platform defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from apps.modeling.recommenders import algorithm_names, recommenders
from apps.tenants.models import Tenant
from apps.tenants.services import tenant_setting

# Setting name -> default. Documented in docs/modeling.md. The algorithms a tenant may
# choose are the registered ones (apps.modeling.recommenders); those that embed items are
# fitted whatever the choice (their factors back the bundle and the lineage export). Each
# algorithm declares its own settings (``Recommender.settings``: ALS's factors,
# regularization, alpha and iterations; BM25's K).
DEFAULTS: dict[str, Any] = {
    "model_weighting": "linear",        # "linear": summed weights; "log": log1p(sum)
    "model_algorithms": None,           # may serve (None: every registered algorithm)
    "model_search_seconds": 60.0,       # extra candidates tried within this budget
    "model_activation_tolerance": 0.005,  # NDCG@10 a new version may lose and still win
    "model_holdout_fraction": 0.2,      # newest share of each subject's items held out
    "model_eval_max_users": 5000,
    "model_random_state": 42,
    "model_threads": 1,                 # 1 = bit-reproducible (the unlearning oracle)
    "model_min_support": 5,             # k: distinct subjects behind a similar-items list
    "model_retrain_debounce_seconds": 300,
    "model_keep_artifacts": 3,          # stored artifacts kept per tenant (active included)
    # No single subject can break or steer training (issue 15): caps on the summed weight
    # of one (subject, item) cell and of one subject's row (scaled down proportionally),
    # and quarantine of subjects whose event volume is anomalous for the tenant.
    "model_max_cell_weight": 100.0,
    "model_max_subject_weight": 1000.0,
    "model_quarantine_multiplier": 500.0,  # volume > this many times the tenant's median
    "model_quarantine_mad_factor": 10.0,   # ... and > median + this many scaled MADs
    "model_quarantine_min_events": 500,    # ... and > this many events (small tenants)
    "dp_epsilon": 1.0,                  # ε per popular-items release
    "dp_contribution_bound": 20,        # distinct items counted per subject at most
    "dp_budget_total": 10.0,            # cap on the summed ε of the releases in the window
    "dp_budget_window_days": 365,       # the rolling window of that cap
}


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


def _num(value: Any, default: Any, cast: type, low: float, high: float) -> Any:
    try:
        number = cast(value)
    except (TypeError, ValueError):
        return default
    if isinstance(value, bool) or not (low <= number <= high):
        return default
    return number


def modeling_settings(tenant: Tenant) -> ModelingSettings:
    """The tenant's modeling settings, each falling back to its default when unset or out
    of range (a bad setting never breaks training)."""

    def get(name: str) -> Any:
        return tenant_setting(tenant, name, DEFAULTS[name])

    weighting = get("model_weighting")
    chosen = get("model_algorithms")
    registered = algorithm_names()
    algorithms = tuple(a for a in registered
                       if isinstance(chosen, list | tuple) and a in chosen) or registered
    return ModelingSettings(
        weighting=weighting if weighting in {"linear", "log"} else "linear",
        algorithms=algorithms,
        search_seconds=_num(get("model_search_seconds"), 60.0, float, 0.0, 86400.0),
        activation_tolerance=_num(get("model_activation_tolerance"), 0.005, float, 0.0, 1.0),
        holdout_fraction=_num(get("model_holdout_fraction"), 0.2, float, 0.0, 0.9),
        eval_max_users=_num(get("model_eval_max_users"), 5000, int, 1, 10**7),
        random_state=_num(get("model_random_state"), 42, int, 0, 2**31 - 1),
        threads=_num(get("model_threads"), 1, int, 0, 256),
        min_support=_num(get("model_min_support"), 5, int, 1, 10**6),
        retrain_debounce_seconds=_num(get("model_retrain_debounce_seconds"), 300, int, 0,
                                      86400 * 7),
        keep_artifacts=_num(get("model_keep_artifacts"), 3, int, 1, 100),
        max_cell_weight=_num(get("model_max_cell_weight"), 100.0, float, 1e-3, 1e9),
        max_subject_weight=_num(get("model_max_subject_weight"), 1000.0, float, 1e-3, 1e12),
        quarantine_multiplier=_num(get("model_quarantine_multiplier"), 500.0, float, 2.0, 1e9),
        quarantine_mad_factor=_num(get("model_quarantine_mad_factor"), 10.0, float, 0.0, 1e6),
        quarantine_min_events=_num(get("model_quarantine_min_events"), 500, int, 1, 10**12),
        dp_epsilon=_num(get("dp_epsilon"), 1.0, float, 1e-3, 100.0),
        dp_contribution_bound=_num(get("dp_contribution_bound"), 20, int, 1, 10**5),
        # Every tenant has a budget: unset, null (the old "no cap") or out of range, the
        # default applies.
        dp_budget_total=_num(get("dp_budget_total"), 10.0, float, 0.0, 1e9),
        dp_budget_window_days=_num(get("dp_budget_window_days"), 365, int, 1, 3650),
        algorithm={name: _num(tenant_setting(tenant, name, spec.default), spec.default,
                              spec.cast, spec.low, spec.high)
                   for recommender in recommenders()
                   for name, spec in recommender.settings.items()},
    )
