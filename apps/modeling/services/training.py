"""Training, registration and activation of a tenant's model (DESIGN steps 6-7).

``train_model`` is the service a training run's task calls: snapshot -> split -> search
(every allowed algorithm) -> final fit -> artifact -> ``ModelVersion`` -> DP popularity ->
activation.
Everything up to the registration is side-effect free apart from the artifact file; the
registration, the ledger row and the activation commit together, so a worker killed at any
point leaves the active model as it was (and the run is redelivered or swept).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.core.jobs import DurableJob, enqueue_job, record_progress
from apps.modeling.config import ModelingSettings, modeling_settings
from apps.modeling.memory import reuse_freed_memory
from apps.modeling.models import ModelVersion, ServingState, TrainingRun
from apps.modeling.recommenders import Recommender
from apps.modeling.services import algorithms, artifacts
from apps.modeling.services.dataset import TrainingData, snapshot_training_data
from apps.modeling.services.popularity import release_popular_items
from apps.modeling.services.quarantine import quarantine_subjects
from apps.tenants.models import Tenant
from apps.webhooks import services as webhooks

logger = logging.getLogger("modeling.training")

Echo = Callable[[str], None]


# --- Pipeline (pure: matrices in, arrays out) ------------------------------------------------


@dataclass
class PipelineResult:
    chosen: algorithms.Candidate
    embedding: algorithms.Candidate   # the item-embedding candidate (bundle, export)
    candidates: list[algorithms.Candidate]
    popularity: dict[str, float]
    artifact: artifacts.Artifact
    split: algorithms.Split
    holdout_users: np.ndarray
    holdout_model: Recommender        # the chosen parameters fitted on the training part
    searched: bool                    # False: one candidate, nothing chosen on validation
    timings: dict[str, float] = field(default_factory=dict)


def fit_pipeline(
    data: TrainingData, cfg: ModelingSettings, *,
    on_iteration: Callable[[str, int, int], None] | None = None, log: Echo | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> PipelineResult:
    """Split, search on the validation split, score the chosen parameters on the hold-out,
    fit the served models on the full data, and assemble the artifact (docs/modeling.md,
    "Search"). Deterministic for given data and settings when the search budget is 0 or
    unbounded and ``threads == 1``; ``clock`` measures the budget.

    Fits: with one candidate in all (one algorithm, no search budget) nothing is chosen,
    so there is no validation fit: the candidate is fitted on the training part, scored on
    the hold-out and warm-started on the full data. Otherwise every candidate is fitted on
    the validation fit, and the chosen ones once more on the training part (ALS warm-starts
    from its validation fit) and once on everything."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    allowed = frozenset(cfg.algorithms)
    grid = algorithms.candidate_grid(cfg, allowed, search=cfg.search_seconds > 0)
    searched = len(grid) > 1
    split = algorithms.split_data(data.matrix, data.last_seen, cfg.holdout_fraction,
                                  rank=data.recency_rank, validation=searched)
    users = algorithms.eval_users(split.test, cfg.eval_max_users)
    timings["split_s"] = time.perf_counter() - started

    holdout_models: dict[int, Recommender] = {}
    served: dict[int, Recommender] = {}
    # Evaluations run in a thread beside the fits, which use one core; the popularity
    # baseline's first, during the first fit.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluate") as evaluations:
        baseline = evaluations.submit(algorithms.evaluate_popularity, split.train,
                                      split.test, users)
        started = time.perf_counter()
        if searched:
            fitted = algorithms.fit_candidates(
                grid, split.fit, split.fit_seen, split.validation,
                algorithms.eval_users(split.validation, cfg.eval_max_users),
                budget_s=cfg.search_seconds, evaluations=evaluations,
                on_iteration=on_iteration, clock=clock)
        else:
            fitted = algorithms.fit_candidates(
                grid, split.train, split.train_seen, split.test, users, budget_s=0.0,
                evaluations=evaluations, on_iteration=on_iteration, clock=clock)
        timings["fits_s"] = time.perf_counter() - started
        if not searched:
            # The one candidate is served whatever its metrics: its fold-in on the full
            # data runs while it is evaluated on a frozen copy.
            only = _fitted(fitted)
            holdout_models[id(only)] = _model(only).frozen()
            fold_started = time.perf_counter()
            served[id(only)] = _model(only).fit_full(
                algorithms.recency_weighted(split.full, split.full_seen, only.recency))
            timings["fold_in_s"] = time.perf_counter() - fold_started
        candidates = algorithms.collect(fitted, log, "validation" if searched else "hold-out")
        if not searched:
            only.holdout, only.metrics = only.metrics, {}
        chosen = algorithms.best_of(candidates, allowed=allowed)
        embedding = algorithms.best_of(candidates, embedding=True, recency=(chosen.recency,))
        for candidate in candidates:  # the others' models are not needed: free them now
            if candidate is not chosen and candidate is not embedding:
                candidate.model = None
        timings["search_s"] = time.perf_counter() - started

        started = time.perf_counter()
        recency = chosen.recency  # one weighting per version: its models share the matrix
        train = algorithms.recency_weighted(split.train, split.train_seen, recency)
        full = algorithms.recency_weighted(split.full, split.full_seen, recency)
        pending = []
        for candidate in {id(c): c for c in (chosen, embedding)}.values():
            if id(candidate) in served:
                continue
            model = _model(candidate).fit_full(train)   # the hold-out fit
            _require_finite(model)  # a diverged fit goes no further (nor warm-starts)
            holdout_models[id(candidate)] = model.frozen()
            pending.append((candidate, evaluations.submit(
                algorithms.evaluate_model, holdout_models[id(candidate)], train, split.test,
                users)))
            served[id(candidate)] = model.fit_full(full)  # the served fit
        for candidate, evaluation in pending:
            candidate.holdout = evaluation.result()
            if log:
                log(f"hold-out: {candidate.label} ndcg@10={candidate.holdout['ndcg@10']:.4f}")
        popularity = baseline.result()
    timings["final_fit_s"] = time.perf_counter() - started

    recommender, embedded = served[id(chosen)], served[id(embedding)]
    for model in {id(m): m for m in (recommender, embedded)}.values():
        _require_finite(model)
    support = np.diff(data.matrix.tocsc().indptr).astype(np.int32)
    artifact = artifacts.Artifact(
        meta=artifacts.build_meta(recommender, embedded), item_ids=data.item_ids,
        user_keys=artifacts.encode_keys(data.user_keys), user_items=full,
        support=support, recommender=recommender, embedding=embedded)
    return PipelineResult(chosen=chosen, embedding=embedding, candidates=candidates,
                          popularity=popularity, artifact=artifact, split=split,
                          holdout_users=users, holdout_model=holdout_models[id(chosen)],
                          searched=searched, timings=timings)


def _fitted(candidates: list[algorithms.Candidate]) -> algorithms.Candidate:
    """The one fitted candidate (when nothing is chosen); a skipped one cannot serve."""
    fitted = [c for c in candidates if c.model is not None]
    if not fitted:
        raise ApplicationError("No algorithm could be fitted on this data: "
                               + "; ".join(c.skipped for c in candidates),
                               code="no_algorithm_fits", status_code=409)
    return fitted[0]


def _require_finite(model: Recommender) -> None:
    """A fit that diverged (NaN or infinite values) is never registered: the run fails with
    this error and the active version keeps serving (issue 15)."""
    for name, array in model.to_arrays().items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise ApplicationError(
                f"The {model.name} fit produced non-finite values in {name}; nothing was "
                "registered and the active version keeps serving.", code="fit_not_finite")


def _model(candidate: algorithms.Candidate) -> Recommender:
    if candidate.model is None:
        raise ValueError(f"candidate {candidate.label} was not fitted")
    return candidate.model


# --- Serving state, activation ---------------------------------------------------------------


def serving_state(tenant: Tenant | int, *, lock: bool = False) -> ServingState:
    """The tenant's serving row (created on first use). ``lock`` serializes registrations,
    activations and erasure patches of one tenant."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    ServingState.objects.bulk_create([ServingState(tenant_id=tenant_id)],
                                     ignore_conflicts=True)
    qs = ServingState.objects.for_tenant(tenant_id)
    return (qs.select_for_update() if lock else qs).get()


#: ``fn(tenant_id, version_id)``, called after the commit that made a version the one in
#: service (a retrain's activation or one by hand). Apps above modeling register from
#: ``AppConfig.ready`` (the privacy app finalises erasure receipts); a listener must not
#: raise, and must not be the only way its work gets done (the commit may be followed by a
#: crash before it runs).
ActivationListener = Callable[[int, int], None]
_activation_listeners: list[ActivationListener] = []


def register_activation_listener(listener: ActivationListener) -> None:
    if listener not in _activation_listeners:
        _activation_listeners.append(listener)


def _notify_activated(tenant_id: int, version_id: int) -> None:
    for listener in _activation_listeners:
        try:
            listener(tenant_id, version_id)
        except Exception:  # one failing listener must not hide the others
            logger.exception("modeling.activation_listener_failed")


def get_active_version(*, tenant: Tenant) -> ModelVersion | None:
    return ModelVersion.objects.for_tenant(tenant).filter(
        status=ModelVersion.Status.ACTIVE).first()


@transaction.atomic
def activate_version(*, tenant: Tenant, version: ModelVersion, actor: Any = None,
                     note: str = "") -> ModelVersion:
    """Make ``version`` the one serving; the previous active one is retired. Idempotent."""
    state = serving_state(tenant, lock=True)
    version = ModelVersion.objects.for_tenant(tenant).select_for_update().get(pk=version.pk)
    if not version.has_artifact:
        raise ApplicationError("This version's artifact was destroyed; it cannot serve.",
                               code="artifact_destroyed", status_code=409)
    if version.status == ModelVersion.Status.ACTIVE:
        return version
    now = timezone.now()
    previous = ModelVersion.objects.for_tenant(tenant).filter(
        status=ModelVersion.Status.ACTIVE).exclude(pk=version.pk)
    previous_numbers = list(previous.values_list("number", flat=True))
    previous.update(status=ModelVersion.Status.RETIRED, retired_at=now, updated_at=now)
    version.status = ModelVersion.Status.ACTIVE
    version.activated_at = now
    version.activation_note = (note or "activated")[:300]
    version.save(update_fields=["status", "activated_at", "activation_note", "updated_at"])
    state.active_version = version
    state.active_revision = version.revision
    state.save(update_fields=["active_version", "active_revision", "updated_at"])
    audit.record(tenant, "modeling.version_activated", actor, version,
                 {"number": version.number, "replaced": previous_numbers,
                  "note": version.activation_note})
    # In this transaction (an outbox): the webhook goes out exactly when the activation commits.
    webhooks.emit_webhook_event(
        tenant_id=tenant.pk, event_type=webhooks.EventType.MODEL_ACTIVATED,
        data={"id": version.pk, "number": version.number, "algorithm": version.algorithm,
              "status": version.status, "replaced": previous_numbers,
              "ndcg_at_10": version.metrics.get("ndcg@10")})
    transaction.on_commit(lambda: prune_artifacts(tenant_id=tenant.pk))
    transaction.on_commit(lambda: _notify_activated(tenant.pk, version.pk))
    return version


@transaction.atomic
def retire_version(*, tenant: Tenant, version: ModelVersion, actor: Any = None
                   ) -> ModelVersion:
    """Take a version out of service by hand; with none active, requests fall back to
    non-personalized answers until another is activated."""
    state = serving_state(tenant, lock=True)
    version = ModelVersion.objects.for_tenant(tenant).select_for_update().get(pk=version.pk)
    if version.status == ModelVersion.Status.RETIRED:
        return version
    was_active = version.status == ModelVersion.Status.ACTIVE
    version.status = ModelVersion.Status.RETIRED
    version.retired_at = timezone.now()
    version.save(update_fields=["status", "retired_at", "updated_at"])
    if was_active:
        state.active_version = None
        state.save(update_fields=["active_version", "updated_at"])
    audit.record(tenant, "modeling.version_retired", actor, version,
                 {"number": version.number, "was_active": was_active})
    return version


#: ``guard(tenant, version) -> reason | None``: a higher app's reason why a version may not be
#: deleted (the privacy app: an unfinished erasure refers to it).
VersionGuard = Callable[[Tenant, ModelVersion], "str | None"]
_version_guards: list[VersionGuard] = []


def register_version_guard(guard: VersionGuard) -> None:
    """Register from ``AppConfig.ready``."""
    if guard not in _version_guards:
        _version_guards.append(guard)


def version_delete_refusal(*, tenant: Tenant, version: ModelVersion) -> str | None:
    """Why ``version`` may not be deleted now, in plain words (``None``: it may). The active
    version serves every request, and a version an unfinished erasure refers to is part of
    its proof: both are retired, never deleted, until nothing needs them."""
    if version.status == ModelVersion.Status.ACTIVE:
        return (f"v{version.number} is the active version: it cannot be deleted. Retire it "
                "(or activate another version) first.")
    for guard in _version_guards:
        reason = guard(tenant, version)
        if reason:
            return reason
    return None


@transaction.atomic
def delete_version(*, tenant: Tenant, version: ModelVersion, actor: Any = None) -> None:
    """Delete a version that nothing needs any more (:func:`version_delete_refusal`, else
    ``ApplicationError`` ``version_in_use``, 409): its artifact is destroyed with it (an
    artifact without its row would read as an unregistered one and block erasures)."""
    serving_state(tenant, lock=True)  # no activation or registration meanwhile
    version = ModelVersion.objects.for_tenant(tenant).select_for_update().get(pk=version.pk)
    reason = version_delete_refusal(tenant=tenant, version=version)
    if reason:
        raise ApplicationError(reason, code="version_in_use", status_code=409,
                               details={"version": version.number})
    audit.record(tenant, "modeling.version_deleted", actor, version,
                 {"number": version.number, "status": version.status,
                  "artifact_destroyed": version.has_artifact})
    path = version.artifact_path if version.has_artifact else ""
    version.delete()
    if path:
        transaction.on_commit(lambda: artifacts.delete(path))


def prune_artifacts(*, tenant_id: int) -> int:
    """Destroy the artifacts no longer needed: those of versions still holding an erased
    subject's influence once another version serves (DESIGN step 8), and all but the newest
    ``model_keep_artifacts``. The rows (metrics, lineage) stay."""
    tenant = Tenant.objects.get(pk=tenant_id)
    keep = modeling_settings(tenant).keep_artifacts
    stored = list(ModelVersion.objects.for_tenant(tenant)
                  .filter(artifact_destroyed_at__isnull=True).exclude(artifact_path="")
                  .order_by("-number"))
    destroyed = 0
    kept = 0
    for version in stored:
        if version.status == ModelVersion.Status.ACTIVE:
            kept += 1
            continue
        if version.erased_subjects or kept >= keep:
            destroy_artifact(tenant=tenant, version=version,
                             why="erased influence" if version.erased_subjects else "pruned")
            destroyed += 1
        else:
            kept += 1
    return destroyed


@transaction.atomic
def destroy_artifact(*, tenant: Tenant, version: ModelVersion, why: str) -> None:
    path = version.artifact_path
    ModelVersion.objects.for_tenant(tenant).filter(pk=version.pk).update(
        artifact_destroyed_at=timezone.now(), updated_at=timezone.now(),
        removed_subject_keys=[])
    audit.record(tenant, "modeling.artifact_destroyed", None, version,
                 {"number": version.number, "why": why})
    transaction.on_commit(lambda: artifacts.delete(path))


# --- Training ------------------------------------------------------------------------------


def _decide_activation(*, active: ModelVersion | None, result: PipelineResult,
                       data: TrainingData, cfg: ModelingSettings) -> dict[str, Any]:
    """Champion/challenger (docs/modeling.md): the active version (the champion) is loaded
    from its artifact and scored on this training's hold-out, restricted to the
    (subject, item) pairs it never trained on, beside the challenger (this version's
    hold-out fit) on exactly the same pairs, both through ``evaluate_rows``. The
    challenger is activated when its NDCG@10 >= the champion's - ``tolerance``. Mandatory
    activations (no champion; a champion still holding erased subjects' influence) and
    comparisons that cannot be made (artifact gone, no pair the champion did not see) let
    the newer model serve. Returns the decision as stored on the version."""
    tolerance = cfg.activation_tolerance
    decision: dict[str, Any] = {"tolerance": tolerance}
    if active is None:
        return {**decision, "activate": True, "rule": "first", "why": "first model of the tenant"}
    decision["champion"] = {"version": active.number, "stored_ndcg@10": active.ndcg}
    if active.erased_subjects:
        return {**decision, "activate": True, "rule": "mandatory", "why": (
            f"replaces v{active.number}, which still holds the influence of "
            f"{active.erased_subjects} erased subject(s)")}
    try:
        if not active.has_artifact:
            raise ApplicationError("destroyed", code="artifact_destroyed")
        champion = artifacts.load(active.artifact_path, active.artifact_sha256)
    except ApplicationError:
        return {**decision, "activate": True, "rule": "not_comparable", "why": (
            f"v{active.number}'s artifact cannot be read: it cannot be re-scored")}
    split = result.split
    test = algorithms.restrict_test(split.test, data.user_keys, data.item_ids,
                                    champion.user_keys, champion.user_items,
                                    champion.item_ids)
    users = algorithms.eval_users(test, cfg.eval_max_users)
    decision["holdout"] = {"users": len(users),
                           "interactions": int(np.diff(test.indptr)[users].sum()),
                           "interactions_seen_by_champion": int(split.test.nnz - test.nnz)}
    if not len(users):
        return {**decision, "activate": True, "rule": "not_comparable", "why": (
            f"no held-out interaction that v{active.number} had not trained on: nothing to "
            "compare, the newer model serves")}
    champion_recency = (active.params or {}).get("recency_half_life_days")
    champion_metrics = algorithms.evaluate_rows(
        champion.recommender, champion.item_ids,
        algorithms.recency_weighted(split.train, split.train_seen, champion_recency),
        test, users, data.item_ids)
    challenger_metrics = algorithms.evaluate_rows(
        result.holdout_model, data.item_ids,
        algorithms.recency_weighted(split.train, split.train_seen, result.chosen.recency),
        test, users, data.item_ids)
    new, old = challenger_metrics["ndcg@10"], champion_metrics["ndcg@10"]
    decision["champion"]["ndcg@10"] = round(old, 6)
    decision["champion"]["algorithm"] = champion.algorithm
    decision["challenger"] = {"ndcg@10": round(new, 6), "algorithm": result.chosen.algorithm}
    if new >= old - tolerance:
        return {**decision, "activate": True, "rule": "challenger_wins", "why": (
            f"NDCG@10 {new:.4f} >= v{active.number}'s {old:.4f} - {tolerance}, both on "
            f"the same hold-out ({len(users)} subjects)")}
    return {**decision, "activate": False, "rule": "champion_kept", "why": (
        f"kept v{active.number}: NDCG@10 {new:.4f} is below its {old:.4f} - tolerance "
        f"{tolerance}, both on the same hold-out ({len(users)} subjects)")}


def _round(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items()}


def train_model(*, tenant: Tenant, run: TrainingRun | None = None,
                echo: Echo | None = None) -> ModelVersion:
    """Train, register and (if it is good enough) activate a new version for ``tenant``.

    Idempotent per run: a run that already registered a version returns it. Raises
    ``ApplicationError(code="not_enough_data")`` when no consented interaction exists.
    Side effects: one artifact file, one ``ModelVersion``, one privacy-budget ledger row,
    audit entries; the previous active version is retired when the new one activates.
    """
    if run is not None and run.model_version_id:
        return ModelVersion.objects.for_tenant(tenant).get(pk=run.model_version_id)
    reuse_freed_memory()  # the snapshot's and the fits' large arrays (apps/modeling/memory.py)
    cfg = modeling_settings(tenant)
    lines: list[str] = []
    started = time.perf_counter()

    # ``percent`` (shown live on the run's admin page) only moves forward: the snapshot is
    # 0-10, the fits 10-90 (each fit takes half of what is left, as their number depends
    # on the search budget), the artifact and the registration 90-100.
    percent = [0.0]
    fits = {"label": None, "count": -1}

    def advance(value: float) -> float:
        percent[0] = round(max(percent[0], min(value, 100.0)), 1)
        return percent[0]

    def say(message: str, at: float | None = None) -> None:
        line = f"[{time.perf_counter() - started:7.2f}s] {message}"
        lines.append(line)
        if echo:
            echo(line)
        if run is not None:
            record_progress(run, stage=message[:80],
                            percent=advance(at if at is not None else min(percent[0] + 0.5, 99.0)))

    last_beat = [0.0]

    def on_iteration(label: str, iteration: int, iterations: int) -> None:
        if label != fits["label"]:
            fits["label"], fits["count"] = label, fits["count"] + 1
        done = fits["count"] + iteration / max(iterations, 1)
        value = 10.0 + 80.0 * (1.0 - 0.5 ** done)
        now = time.perf_counter()
        if run is not None and (now - last_beat[0] > 0.2 or iteration == iterations):
            last_beat[0] = now
            record_progress(run, stage="fit", candidate=label, iteration=iteration,
                            iterations=iterations, percent=advance(value))
        if echo and (iteration == iterations or iteration % 5 == 0):
            echo(f"  {label}: iteration {iteration}/{iterations}")

    data = snapshot_training_data(tenant=tenant, weighting=cfg.weighting,
                                  progress=say, cfg=cfg)
    if data.quarantine:  # stored now: a fit that fails later does not undo the finding
        quarantine_subjects(tenant=tenant, findings=data.quarantine)
        say(f"quarantined {len(data.quarantine)} subject(s) with anomalous activity")
    say(f"snapshot: {data.stats['subjects_consented']} subjects "
        f"({data.stats['subjects_excluded_by_consent']} excluded by consent), "
        f"{data.stats['items']} items, {data.stats['interactions']} interactions", at=10.0)
    if data.matrix.nnz == 0 or data.matrix.shape[0] < 2 or data.matrix.shape[1] < 2:
        raise ApplicationError("Not enough consented interactions to train a model.",
                               code="not_enough_data", status_code=409)
    result = fit_pipeline(data, cfg, on_iteration=on_iteration, log=say)
    chosen = result.chosen
    validation = f"validation {chosen.ndcg:.4f}, " if result.searched else ""
    say(f"chosen: {chosen.label} ({validation}hold-out ndcg@10 "
        f"{chosen.holdout['ndcg@10']:.4f}; popularity {result.popularity['ndcg@10']:.4f})", at=90.0)

    save_started = time.perf_counter()
    label = f"run{run.pk}" if run is not None else "manual"
    path, digest, size = artifacts.save(tenant.pk, result.artifact, label=label)
    save_s = time.perf_counter() - save_started
    say(f"artifact saved: {size} bytes, sha256 {digest[:12]}", at=95.0)
    timings = {**data.timings, **result.timings, "artifact_s": save_s,
               "total_s": time.perf_counter() - started}

    try:
        version = _register(tenant=tenant, run=run, data=data, result=result, cfg=cfg,
                            path=path, digest=digest, size=size, timings=timings,
                            log=say)
    except BaseException:
        artifacts.delete(path)  # nothing refers to it
        raise
    if run is not None:
        TrainingRun.objects.for_tenant(tenant).filter(pk=run.pk).update(
            log="\n".join(lines)[-20000:])
    return version


@transaction.atomic
def _register(*, tenant: Tenant, run: TrainingRun | None, data: TrainingData,
              result: PipelineResult, cfg: ModelingSettings, path: str, digest: str,
              size: int, timings: dict[str, float], log: Echo) -> ModelVersion:
    state = serving_state(tenant, lock=True)  # one registration at a time per tenant
    if run is not None:
        run = TrainingRun.objects.for_tenant(tenant).select_for_update().get(pk=run.pk)
        if run.model_version_id:  # a duplicate delivery got here first
            transaction.on_commit(lambda: artifacts.delete(path))
            return ModelVersion.objects.for_tenant(tenant).get(pk=run.model_version_id)
    number = (ModelVersion.objects.for_tenant(tenant).aggregate(n=Max("number"))["n"] or 0) + 1
    chosen, embedding = result.chosen, result.embedding
    version = ModelVersion.objects.create(
        tenant=tenant, number=number, algorithm=chosen.algorithm,
        params={"chosen": chosen.params, embedding.algorithm: embedding.params,
                "recency_half_life_days": chosen.recency,
                "weighting": cfg.weighting, "searched": result.searched,
                "holdout_fraction": cfg.holdout_fraction, "search_seconds": cfg.search_seconds,
                "min_support": cfg.min_support},
        data_stats=data.stats,
        metrics={"model": _round(chosen.holdout), "popularity": _round(result.popularity),
                 embedding.algorithm: _round(embedding.holdout),
                 "validation": _round(chosen.metrics)},
        search=[c.summary() for c in result.candidates],
        timings={k: round(v, 4) for k, v in timings.items()},
        consent_snapshot_at=data.consent_snapshot_at,
        artifact_path=path, artifact_sha256=digest, artifact_bytes=size)
    if run is not None:
        run.model_version = version
        run.save(update_fields=["model_version", "updated_at"])
    release_popular_items(
        tenant=tenant, matrix=data.matrix, last_seen=data.last_seen, item_ids=data.item_ids,
        epsilon=cfg.dp_epsilon, bound=cfg.dp_contribution_bound,
        budget_total=cfg.dp_budget_total, window_days=cfg.dp_budget_window_days,
        model_version=version, rank=data.recency_rank)
    audit.record(tenant, "modeling.version_registered", None, version,
                 {"number": number, "algorithm": chosen.algorithm,
                  "ndcg@10": round(float(chosen.holdout["ndcg@10"]), 6),
                  "subjects": data.stats["subjects_consented"],
                  "consent_snapshot_at": data.consent_snapshot_at.isoformat()})
    # Under the serving-state lock: the champion cannot change while it is re-scored.
    decision = _decide_activation(active=get_active_version(tenant=tenant), result=result,
                                  data=data, cfg=cfg)
    version.activation_decision = decision
    version.save(update_fields=["activation_decision", "updated_at"])
    why = decision["why"]
    log(f"v{number}: {'activated' if decision['activate'] else 'not activated'} ({why})")
    if decision["activate"]:
        activate_version(tenant=tenant, version=version, note=why)
        version.refresh_from_db()
    else:
        version.activation_note = why[:300]
        version.save(update_fields=["activation_note", "updated_at"])
    # Erasures and withdrawals up to the consent snapshot are reflected in this model.
    if state.retrain_requested_at and state.retrain_requested_at <= data.consent_snapshot_at:
        ServingState.objects.for_tenant(tenant).filter(pk=state.pk).update(
            retrain_requested_at=None, retrain_reason="")
    return version


# --- Runs ------------------------------------------------------------------------------------


@transaction.atomic
def request_training(*, tenant: Tenant, reason: str = TrainingRun.Reason.MANUAL,
                     enqueue: bool = True) -> TrainingRun:
    """A training run for ``tenant``: the pending one if there is one (requests coalesce),
    else a new row whose task is sent after commit. A pending run whose last attempt failed
    (it waits for the sweeper) is sent again now: a failed fit never holds back the retrain
    an erasure asks for."""
    serving_state(tenant, lock=True)
    pending = TrainingRun.objects.for_tenant(tenant).filter(
        status=DurableJob.Status.PENDING).order_by("pk").first()
    if pending is not None:
        if enqueue and pending.last_error:
            enqueue_job(pending)
        return pending
    run = TrainingRun.objects.create(tenant=tenant, reason=reason)
    if enqueue:
        enqueue_job(run)
    return run


def request_retrain_later(*, tenant_id: int, reason: str) -> None:
    """Mark a retrain as wanted (an erasure or withdrawal). The beat task starts it once
    the tenant's debounce delay has passed since the first unserved request."""
    serving_state(tenant_id)
    ServingState.objects.for_tenant(tenant_id).filter(retrain_requested_at__isnull=True).update(
        retrain_requested_at=timezone.now(), retrain_reason=reason[:16])


def request_retrain_after_deletion(*, tenant: Tenant, cutoff: datetime) -> ModelVersion | None:
    """Data older than ``cutoff`` was deleted (retention). If the active model's training
    window began before the cutoff it holds data that is gone: ask for a retrain (debounced
    by the beat, minutes later); the retrain recomputes every subject's factors from what
    remains. Returns the active version when a retrain was asked for."""
    active = get_active_version(tenant=tenant)
    if active is None:
        return None
    since = (active.data_stats or {}).get("retention_since")
    try:
        window_start = datetime.fromisoformat(since) if since else None
    except (TypeError, ValueError):
        window_start = None
    if window_start is not None and window_start >= cutoff:
        return None
    request_retrain_later(tenant_id=tenant.pk, reason=TrainingRun.Reason.RETENTION)
    return active


def start_due_retrains(*, now: datetime | None = None) -> int:
    """Beat: start the debounced retrains whose delay has passed. Crosses tenants on
    purpose (housekeeping over one bookkeeping table)."""
    now = now or timezone.now()
    started = 0
    due = ServingState.all_tenants.filter(  # every tenant's pending retrains, on purpose
        retrain_requested_at__isnull=False).select_related("tenant")
    for state in due:
        cfg = modeling_settings(state.tenant)
        if state.retrain_requested_at > now - timedelta(seconds=cfg.retrain_debounce_seconds):
            continue
        if TrainingRun.objects.for_tenant(state.tenant_id).filter(
                status=DurableJob.Status.RUNNING).exists():
            continue  # the running one may predate the request; try again next beat
        reason = state.retrain_reason or TrainingRun.Reason.ERASURE
        request_training(tenant=state.tenant, reason=reason)
        started += 1
    return started


def schedule_training_for_all(*, reason: str = TrainingRun.Reason.SCHEDULED) -> int:
    """Beat (nightly): a training run for every active tenant that has events."""
    from apps.events.selectors import list_events

    count = 0
    for tenant in Tenant.objects.filter(is_active=True):
        if list_events(tenant=tenant).exists():
            request_training(tenant=tenant, reason=reason)
            count += 1
    return count


def execute_training_run(*, tenant_id: int, run_id: int, echo: Echo | None = None
                         ) -> ModelVersion | None:
    """Claim and run one training run (the task's service), under the job runner's one
    error policy (``apps.core.jobs.run_job``). A duplicate delivery of a finished run is a
    no-op; a run redelivered after its worker died starts over (nothing it did before
    registration is visible)."""
    from apps.core.jobs import finish_job, run_job

    def train(run: TrainingRun) -> ModelVersion:
        version = train_model(tenant=Tenant.objects.get(pk=tenant_id), run=run, echo=echo)
        run.refresh_from_db()
        finish_job(run, stage="done", percent=100.0, model_version=version.number,
                   status_note=(version.activation_note or "")[:200])
        return version

    return run_job(TrainingRun, tenant_id=tenant_id, job_id=run_id, work=train)
