"""The modeling app's tenant settings (``apps.core.tenant_settings``), documented in
docs/modeling.md. Each algorithm's own settings (``Recommender.settings``) are declared here
from the algorithm's class, so a new algorithm brings its settings with it."""

from __future__ import annotations

from apps.core.tenant_settings import Kind, TenantSetting, declare
from apps.modeling.recommenders import algorithm_names, recommenders

GROUP = "Models"
BUDGET_GROUP = "Privacy budget"


def _number(name: str, default: float, low: float | None, high: float | None, help: str,
            group: str = GROUP) -> TenantSetting:
    return declare(name, Kind.NUMBER, default=default, low=low, high=high, group=group,
                   help=help)


def _integer(name: str, default: int, low: float | None, high: float | None, help: str,
             group: str = GROUP) -> TenantSetting:
    return declare(name, Kind.INTEGER, default=default, low=low, high=high, group=group,
                   help=help)


WEIGHTING = declare(
    "model_weighting", Kind.CHOICE, default="linear", choices=("linear", "log"), group=GROUP,
    help="How a subject's interactions with an item add up: linear (summed weights) or log "
         "(log1p of the sum).")
ALGORITHMS = declare(
    "model_algorithms", Kind.CHOICES, default=None, nullable=True, choices=algorithm_names,
    group=GROUP, help="Algorithms that may serve (empty or null: every registered one).")

#          name                              default  low     high         help
SEARCH_SECONDS = _number(
    "model_search_seconds",                  60.0,    0.0,    86400.0,
    "Time budget (s) for trying extra candidate parameters at each training.")
ACTIVATION_TOLERANCE = _number(
    "model_activation_tolerance",            0.005,   0.0,    1.0,
    "NDCG@10 a new version may lose against the active one and still be activated.")
HOLDOUT_FRACTION = _number(
    "model_holdout_fraction",                0.2,     0.0,    0.9,
    "Newest share of each subject's items held out for evaluation.")
EVAL_MAX_USERS = _integer(
    "model_eval_max_users",                  5000,    1,      10**7,
    "Subjects evaluated on the hold-out at most.")
RANDOM_STATE = _integer(
    "model_random_state",                    42,      0,      2**31 - 1,
    "Seed of the training's random choices.")
THREADS = _integer(
    "model_threads",                         1,       0,      256,
    "Threads per fit (1 = bit-reproducible, which the unlearning check relies on).")
MIN_SUPPORT = _integer(
    "model_min_support",                     5,       1,      10**6,
    "k: distinct subjects needed behind a similar-items list.")
RETRAIN_DEBOUNCE = _integer(
    "model_retrain_debounce_seconds",        300,     0,      86400 * 7,
    "Delay (s) before the retrain an erasure or withdrawal asks for.")
KEEP_ARTIFACTS = _integer(
    "model_keep_artifacts",                  3,       1,      100,
    "Stored model artifacts kept per tenant, the active one included.")
MAX_CELL_WEIGHT = _number(
    "model_max_cell_weight",                 100.0,   1e-3,   1e9,
    "Cap on the summed weight of one (subject, item) cell.")
MAX_SUBJECT_WEIGHT = _number(
    "model_max_subject_weight",              1000.0,  1e-3,   1e12,
    "Cap on the summed weight of one subject's row (scaled down proportionally).")
QUARANTINE_MULTIPLIER = _number(
    "model_quarantine_multiplier",           500.0,   2.0,    1e9,
    "A subject is quarantined when their event volume exceeds this many times the "
    "tenant's median ...")
QUARANTINE_MAD_FACTOR = _number(
    "model_quarantine_mad_factor",           10.0,    0.0,    1e6,
    "... and the median plus this many scaled MADs ...")
QUARANTINE_MIN_EVENTS = _integer(
    "model_quarantine_min_events",           500,     1,      10**12,
    "... and this many events (spares small tenants).")

DP_EPSILON = _number(
    "dp_epsilon",                            1.0,     1e-3,   100.0,
    "ε spent per differentially private popular-items release.", group=BUDGET_GROUP)
DP_CONTRIBUTION_BOUND = _integer(
    "dp_contribution_bound",                 20,      1,      10**5,
    "Distinct items counted per subject at most (sensitivity).", group=BUDGET_GROUP)
DP_BUDGET_TOTAL = _number(
    "dp_budget_total",                       10.0,    0.0,    1e9,
    "Cap on the summed ε of the releases within the window.", group=BUDGET_GROUP)
DP_BUDGET_WINDOW_DAYS = _integer(
    "dp_budget_window_days",                 365,     1,      3650,
    "The rolling window (days) of the ε cap.", group=BUDGET_GROUP)

# Each algorithm's own settings, declared from its class.
for _recommender in recommenders():
    for _name, _spec in _recommender.settings.items():
        (_integer if _spec.cast is int else _number)(
            _name, _spec.default, _spec.low, _spec.high,
            _spec.help or f"{_recommender.label} parameter.",
            group=f"Models: {_recommender.label}")
