"""The modeling app's tenant settings (``apps.core.tenant_settings``), documented in
docs/modeling.md. Each algorithm's own settings (``Recommender.settings``) are declared here
from the algorithm's class, so a new algorithm brings its settings with it."""

from __future__ import annotations

from apps.core.tenant_settings import Kind, declare
from apps.modeling.recommenders import algorithm_names, recommenders

GROUP = "Models"

WEIGHTING = declare(
    "model_weighting", Kind.CHOICE, default="linear", choices=("linear", "log"), group=GROUP,
    help="How a subject's interactions with an item add up: linear (summed weights) or log "
         "(log1p of the sum).")
ALGORITHMS = declare(
    "model_algorithms", Kind.CHOICES, default=None, nullable=True, choices=algorithm_names,
    group=GROUP, help="Algorithms that may serve (empty or null: every registered one).")
SEARCH_SECONDS = declare(
    "model_search_seconds", Kind.NUMBER, default=60.0, low=0.0, high=86400.0, group=GROUP,
    help="Time budget (s) for trying extra candidate parameters at each training.")
ACTIVATION_TOLERANCE = declare(
    "model_activation_tolerance", Kind.NUMBER, default=0.005, low=0.0, high=1.0, group=GROUP,
    help="NDCG@10 a new version may lose against the active one and still be activated.")
HOLDOUT_FRACTION = declare(
    "model_holdout_fraction", Kind.NUMBER, default=0.2, low=0.0, high=0.9, group=GROUP,
    help="Newest share of each subject's items held out for evaluation.")
EVAL_MAX_USERS = declare(
    "model_eval_max_users", Kind.INTEGER, default=5000, low=1, high=10**7, group=GROUP,
    help="Subjects evaluated on the hold-out at most.")
RANDOM_STATE = declare(
    "model_random_state", Kind.INTEGER, default=42, low=0, high=2**31 - 1, group=GROUP,
    help="Seed of the training's random choices.")
THREADS = declare(
    "model_threads", Kind.INTEGER, default=1, low=0, high=256, group=GROUP,
    help="Threads per fit (1 = bit-reproducible, which the unlearning check relies on).")
MIN_SUPPORT = declare(
    "model_min_support", Kind.INTEGER, default=5, low=1, high=10**6, group=GROUP,
    help="k: distinct subjects needed behind a similar-items list.")
RETRAIN_DEBOUNCE = declare(
    "model_retrain_debounce_seconds", Kind.INTEGER, default=300, low=0, high=86400 * 7,
    group=GROUP, help="Delay (s) before the retrain an erasure or withdrawal asks for.")
KEEP_ARTIFACTS = declare(
    "model_keep_artifacts", Kind.INTEGER, default=3, low=1, high=100, group=GROUP,
    help="Stored model artifacts kept per tenant, the active one included.")
MAX_CELL_WEIGHT = declare(
    "model_max_cell_weight", Kind.NUMBER, default=100.0, low=1e-3, high=1e9, group=GROUP,
    help="Cap on the summed weight of one (subject, item) cell.")
MAX_SUBJECT_WEIGHT = declare(
    "model_max_subject_weight", Kind.NUMBER, default=1000.0, low=1e-3, high=1e12, group=GROUP,
    help="Cap on the summed weight of one subject's row (scaled down proportionally).")
QUARANTINE_MULTIPLIER = declare(
    "model_quarantine_multiplier", Kind.NUMBER, default=500.0, low=2.0, high=1e9, group=GROUP,
    help="A subject is quarantined when their event volume exceeds this many times the "
         "tenant's median ...")
QUARANTINE_MAD_FACTOR = declare(
    "model_quarantine_mad_factor", Kind.NUMBER, default=10.0, low=0.0, high=1e6, group=GROUP,
    help="... and the median plus this many scaled MADs ...")
QUARANTINE_MIN_EVENTS = declare(
    "model_quarantine_min_events", Kind.INTEGER, default=500, low=1, high=10**12, group=GROUP,
    help="... and this many events (spares small tenants).")
DP_EPSILON = declare(
    "dp_epsilon", Kind.NUMBER, default=1.0, low=1e-3, high=100.0, group="Privacy budget",
    help="ε spent per differentially private popular-items release.")
DP_CONTRIBUTION_BOUND = declare(
    "dp_contribution_bound", Kind.INTEGER, default=20, low=1, high=10**5,
    group="Privacy budget", help="Distinct items counted per subject at most (sensitivity).")
DP_BUDGET_TOTAL = declare(
    "dp_budget_total", Kind.NUMBER, default=10.0, low=0.0, high=1e9, group="Privacy budget",
    help="Cap on the summed ε of the releases within the window.")
DP_BUDGET_WINDOW_DAYS = declare(
    "dp_budget_window_days", Kind.INTEGER, default=365, low=1, high=3650,
    group="Privacy budget", help="The rolling window (days) of the ε cap.")

# Each algorithm's own settings, declared from its class.
for _recommender in recommenders():
    for _name, _spec in _recommender.settings.items():
        declare(_name, Kind.INTEGER if _spec.cast is int else Kind.NUMBER,
                default=_spec.default, low=_spec.low, high=_spec.high,
                group=f"Models: {_recommender.label}",
                help=_spec.help or f"{_recommender.label} parameter.")
