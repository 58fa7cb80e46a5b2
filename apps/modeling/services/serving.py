"""Serving from memory (DESIGN step 7).

Each process keeps one loaded model per tenant. A request reads one indexed row
(``ServingState``: active version, its revision, the catalog stamp), joined to its API-key
authentication query (``tenant.serving_state``), and reloads only when one of them moved:
a new activation, an erasure patch, or a catalog change (item deactivated, categories
edited). Apart from authentication and the consent check, a request touches no database:
scores, seen items, categories and active flags are arrays in memory. Scores come from the
artifact's ``Recommender``; nothing here depends on which algorithm it is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apps.consent.selectors import get_subject_consent_views
from apps.core.exceptions import ApplicationError
from apps.events.selectors import list_items
from apps.modeling.models import ModelVersion, PrivacyBudgetEntry, ServingState
from apps.modeling.recommenders import Recommender
from apps.modeling.services import artifacts
from apps.tenants.models import Tenant
from apps.tenants.services import loaded_with_api_key

logger = logging.getLogger("modeling.serving")

PERSONALIZATION = "personalization"
MAX_N = 100
MAX_SESSION_ITEMS = 50
EXPLAIN_ITEMS = 3


@dataclass
class Catalog:
    """Item flags aligned with the model's columns."""

    stamp: int
    external_ids: np.ndarray            # object array of str ("" for items gone)
    active: np.ndarray                  # bool
    categories: list[frozenset[str]]
    column_of: dict[str, int]
    _category_masks: dict[str, np.ndarray] = field(default_factory=dict)

    def category_mask(self, wanted: Sequence[str]) -> np.ndarray:
        mask = np.zeros(len(self.active), dtype=bool)
        for name in wanted:
            cached = self._category_masks.get(name)
            if cached is None:
                cached = np.fromiter((name in c for c in self.categories), dtype=bool,
                                     count=len(self.categories))
                self._category_masks[name] = cached
            mask |= cached
        return mask


@dataclass(frozen=True)
class PopularItem:
    """One item of the DP popular list, with the catalog flags serving filters on."""

    external_id: str
    score: float
    active: bool
    categories: frozenset[str]


@dataclass
class LoadedModel:
    tenant_id: int
    version_id: int
    number: int
    revision: int
    artifact: artifacts.Artifact
    catalog: Catalog
    popular: list[PopularItem]           # the latest DP release, best first
    min_support: int
    _bundle: dict[str, Any] | None = None

    @property
    def supported(self) -> np.ndarray:
        """The k-anonymity floor (tenant setting ``model_min_support``): columns resting on
        at least ``min_support`` distinct subjects. Anything answered from item
        co-occurrence alone (similar items, session answers, the device bundle) lists and
        starts from these columns only, so that nothing shown rests on fewer than k people."""
        return self.artifact.support >= self.min_support

    @property
    def algorithm(self) -> str:
        return self.artifact.algorithm

    @property
    def recommender(self) -> Recommender:
        return self.artifact.recommender


@dataclass
class Recommendation:
    model_version: int | None
    personalized: bool
    reason: str | None
    items: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "personalized": self.personalized,
                "reason": self.reason, "items": self.items}


_models: dict[int, LoadedModel] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _models.clear()


def _load_catalog(tenant: Tenant, item_ids: np.ndarray, stamp: int) -> Catalog:
    column = {int(pk): n for n, pk in enumerate(item_ids.tolist())}
    n = len(item_ids)
    external_ids = np.full(n, "", dtype=object)
    active = np.zeros(n, dtype=bool)
    categories: list[frozenset[str]] = [frozenset()] * n
    column_of: dict[str, int] = {}
    for pk, external_id, is_active, cats in list_items(tenant=tenant).values_list(
            "pk", "external_id", "is_active", "categories").iterator(chunk_size=5000):
        col = column.get(pk)
        if col is None:
            continue
        external_ids[col] = external_id
        active[col] = is_active
        categories[col] = frozenset(str(c) for c in (cats or []))
        column_of[external_id] = col
    return Catalog(stamp=stamp, external_ids=external_ids, active=active,
                   categories=categories, column_of=column_of)


def _load_popular(tenant: Tenant) -> list[PopularItem]:
    """The tenant's latest DP release (a refused release leaves the previous one here).
    Its items are any of the catalog's, in the model or not: keeping only the model's would
    filter the release on the training data, undoing its privacy."""
    release = (PrivacyBudgetEntry.objects.for_tenant(tenant)
               .filter(kind=PrivacyBudgetEntry.Kind.POPULAR_ITEMS)
               .values_list("released", flat=True).first()) or []
    flags = {pk: (external_id, is_active, cats) for pk, external_id, is_active, cats
             in list_items(tenant=tenant).filter(pk__in=[int(pk) for pk, _ in release])
             .values_list("pk", "external_id", "is_active", "categories")}
    return [PopularItem(external_id=flags[int(pk)][0], score=float(count),
                        active=flags[int(pk)][1],
                        categories=frozenset(str(c) for c in (flags[int(pk)][2] or [])))
            for pk, count in release if int(pk) in flags]


def _load_model(tenant: Tenant, version_id: int, revision: int, stamp: int) -> LoadedModel:
    from apps.modeling.config import modeling_settings

    version = ModelVersion.objects.for_tenant(tenant).get(pk=version_id)
    artifact = artifacts.load(version.artifact_path, version.artifact_sha256)
    return LoadedModel(
        tenant_id=tenant.pk, version_id=version.pk, number=version.number,
        revision=version.revision, artifact=artifact,
        catalog=_load_catalog(tenant, artifact.item_ids, stamp), popular=_load_popular(tenant),
        min_support=modeling_settings(tenant).min_support)


SERVING_STATE_FIELDS = ("active_version_id", "active_revision", "catalog_stamp")


def _serving_state(tenant: Tenant) -> tuple[Any, ...] | None:
    """``(active version id, revision, catalog stamp)``. An API request's tenant carries
    its row, read with the key (``authenticate_api_key`` joins ``serving_state``); any
    other caller reads the one indexed row, without caching it on ``tenant``."""
    if loaded_with_api_key(tenant):
        state = getattr(tenant, "serving_state", None)  # None: the tenant has no row yet
        return None if state is None else tuple(getattr(state, f)
                                                for f in SERVING_STATE_FIELDS)
    return (ServingState.objects.for_tenant(tenant)
            .values_list(*SERVING_STATE_FIELDS).first())


def current_model(tenant: Tenant) -> LoadedModel | None:
    """The tenant's active model, from this process's cache, reloaded when the serving
    state moved."""
    row = _serving_state(tenant)
    if row is None or row[0] is None:
        return None
    version_id, revision, stamp = row
    loaded = _models.get(tenant.pk)
    if loaded is None or loaded.version_id != version_id or loaded.revision != revision:
        with _lock:
            loaded = _models.get(tenant.pk)
            if loaded is None or loaded.version_id != version_id or loaded.revision != revision:
                loaded = _load_model(tenant, version_id, revision, stamp)
                _models[tenant.pk] = loaded
                logger.info("modeling.model_loaded tenant=%s version=%s revision=%s",
                            tenant.pk, loaded.number, revision)
    if loaded.catalog.stamp != stamp:
        loaded.catalog = _load_catalog(tenant, loaded.artifact.item_ids, stamp)
        loaded.popular = _load_popular(tenant)
        loaded._bundle = None
    return loaded


# --- Building answers --------------------------------------------------------------------


def _valid_mask(model: LoadedModel, categories: Sequence[str]) -> np.ndarray:
    mask = model.catalog.active.copy()
    if categories:
        mask &= model.catalog.category_mask(categories)
    return mask


def _top(scores: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    scores = np.where(valid, scores, -np.inf)
    candidates = int(valid.sum())
    if candidates == 0:
        return np.zeros(0, dtype=np.int64)
    n = min(n, candidates)
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top[np.isfinite(scores[top])]


def _items(model: LoadedModel, columns: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    ids = model.catalog.external_ids
    return [{"item": ids[c], "score": round(float(scores[c]), 6)} for c in columns.tolist()]


def _popular(model: LoadedModel, n: int, categories: Sequence[str], reason: str,
             exclude: Sequence[int] = ()) -> Recommendation:
    """The DP popular list (already private: no support floor), less the ``exclude``
    columns (e.g. the session's own items)."""
    wanted = set(categories)
    excluded = {model.catalog.external_ids[col] for col in exclude}
    items = [{"item": p.external_id, "score": p.score} for p in model.popular
             if p.active and (not wanted or wanted & p.categories)
             and p.external_id not in excluded]
    return Recommendation(model.number, False, reason, items[:n])


def _blocked_reason(tenant: Tenant, subject_key: str) -> str | None:
    """Why the subject's profile may not be used now (None: it may)."""
    view = get_subject_consent_views(tenant=tenant, subject_keys=[subject_key])[subject_key]
    if view.restricted:
        return "restricted"
    if view.objected:
        return "objected"
    if view.level == "off":
        return "level_off"
    if view.level == "full" and PERSONALIZATION in view.allowed_purposes:
        return None
    # Below "full": personalization granted but a "session" level chosen, or no usable
    # consent (the consent app caps the level at "session" then). The same one statement
    # answers both: most visitors of a tenant may be on this path.
    granted = PERSONALIZATION in view.granted_purposes
    return "level_session" if granted and view.level == "session" else "no_consent"


def _explain(model: LoadedModel, row: int, columns: np.ndarray) -> list[list[dict[str, Any]]]:
    ids = model.catalog.external_ids
    return [[{"item": ids[col], "weight": round(weight, 6)} for col, weight in because]
            for because in model.recommender.explain(row, model.artifact.user_items, columns,
                                                     EXPLAIN_ITEMS)]


def _candidates(model: LoadedModel, scores: np.ndarray, categories: Sequence[str]
                ) -> np.ndarray:
    """Columns that may be recommended: active, in ``categories`` when given, and scored
    at all when the algorithm scores only neighbourhoods."""
    valid = _valid_mask(model, categories)
    if model.recommender.positive_scores_only:
        valid &= scores > 0
    return valid


def recommend_for_subject(
    *, tenant: Tenant, subject_key: str, n: int = 10, exclude_seen: bool = True,
    categories: Sequence[str] = (), explain: bool = False,
) -> Recommendation:
    """Personalized recommendations when the subject's consent allows it now (level full,
    personalization granted, not restricted or objected) and the active model knows them;
    otherwise the DP popular list with ``personalized: false`` and the reason."""
    model = current_model(tenant)
    reason = _blocked_reason(tenant, subject_key)
    if model is None:
        return Recommendation(None, False, reason or "no_model", [])
    row = None if reason else model.artifact.user_row(subject_key)
    if reason is None and row is None:
        reason = "unknown_subject"
    if reason is not None or row is None:
        return _popular(model, n, categories, reason or "unknown_subject")
    return Recommendation(model.number, True, None, score_subject(
        model, row, n=n, exclude_seen=exclude_seen, categories=categories, explain=explain))


def score_subject(model: LoadedModel, row: int, *, n: int = 10, exclude_seen: bool = True,
                  categories: Sequence[str] = (), explain: bool = False
                  ) -> list[dict[str, Any]]:
    """The in-memory part of a personalized answer (no database)."""
    scores = model.recommender.score_subject(row, model.artifact.user_items)
    valid = _candidates(model, scores, categories)
    if exclude_seen:
        ui = model.artifact.user_items
        valid[ui.indices[ui.indptr[row]:ui.indptr[row + 1]]] = False
    columns = _top(scores, valid, n)
    items = _items(model, columns, scores)
    if explain:
        for item, because in zip(items, _explain(model, row, columns), strict=True):
            item["because"] = because
    return items


def recommend_for_session(*, tenant: Tenant, recent_items: Sequence[str], n: int = 10,
                          categories: Sequence[str] = ()) -> Recommendation:
    """Recommendations from the items of the current session only (the recommender's
    ``score_session``: for ALS a user vector solved on the fly, for item-kNN the items'
    neighbourhoods). Nothing about the caller is stored or logged."""
    import scipy.sparse as sp

    model = current_model(tenant)
    if model is None:
        return Recommendation(None, False, "no_model", [])
    known = [model.catalog.column_of[i] for i in recent_items if i in model.catalog.column_of]
    if not known:
        return _popular(model, n, categories, "no_known_items")
    supported = model.supported
    # Like similar items: an item below the floor neither seeds the answer (its few
    # subjects' other items would be its neighbours) nor appears in it.
    columns = [c for c in known if supported[c]]
    if not columns:
        return _popular(model, n, categories, "insufficient_support", exclude=known)
    counts = np.bincount(np.array(columns), minlength=len(model.catalog.active))
    seen = np.flatnonzero(counts)
    row = sp.csr_matrix((counts[seen].astype(np.float32), seen.astype(np.int32),
                         np.array([0, len(seen)])), shape=(1, len(counts)))
    scores = model.recommender.score_session(row)
    valid = _candidates(model, scores, categories) & supported
    valid[known] = False
    top = _top(scores, valid, n)
    return Recommendation(model.number, False, "session", _items(model, top, scores))


def similar_items(*, tenant: Tenant, item: str, n: int = 10,
                  categories: Sequence[str] = ()) -> Recommendation:
    """Items like ``item``. Only items with at least ``min_support`` distinct subjects are
    answered for or listed, so no list rests on fewer than k people. Unknown item -> 404."""
    from apps.events.selectors import get_item

    model = current_model(tenant)
    col = model.catalog.column_of.get(item) if model is not None else None
    if col is None:
        try:
            get_item(tenant=tenant, external_id=item)
        except Exception as exc:  # Item.DoesNotExist: same 404 as another tenant's item
            raise ApplicationError("No such item.", code="not_found", status_code=404) from exc
        if model is None:
            return Recommendation(None, False, "no_model", [])
        return Recommendation(model.number, False, "item_not_in_model", [])
    supported = model.supported
    if not supported[col]:
        return Recommendation(model.number, False, "insufficient_support", [])
    scores = model.recommender.similar(col)
    valid = _candidates(model, scores, categories) & supported
    valid[col] = False
    top = _top(scores, valid, n)
    return Recommendation(model.number, False, None, _items(model, top, scores))


@dataclass(frozen=True)
class ServingAlgorithm:
    """The algorithm that answers a tenant's requests now: the recommender of the active
    version's artifact, as loaded for serving."""

    model_version: int
    name: str
    label: str
    logic: str

    def as_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "algorithm": self.name,
                "label": self.label}


def serving_algorithm(*, tenant: Tenant) -> ServingAlgorithm | None:
    """The algorithm that serves (``None``: no model is active). The one source for what
    the access export and the model bundle say about the algorithm, so neither can name
    another than the one answering."""
    model = current_model(tenant)
    return None if model is None else _served(model)


def _served(model: LoadedModel) -> ServingAlgorithm:
    recommender = type(model.recommender)
    return ServingAlgorithm(model_version=model.number, name=recommender.name,
                            label=str(recommender.label), logic=str(recommender.logic))


def model_bundle(*, tenant: Tenant) -> dict[str, Any]:
    """The active model for on-device scoring: the ids and factors of the active items at
    or above the ``model_min_support`` floor (``LoadedModel.supported``) and the regularized
    Gram matrix ``G = YᵀY + λI`` of all item factors (docs/modeling.md: the on-device solve
    must match the server's, and G is a sum over every item, not any one item's factors),
    from the artifact's item-embedding model whichever algorithm serves. ``algorithm``
    names the algorithm that serves the API (:func:`serving_algorithm`);
    ``factors_algorithm`` the one whose factors these are."""
    model = current_model(tenant)
    if model is None:
        raise ApplicationError("No model is active yet.", code="no_active_model",
                               status_code=404)
    if model._bundle is None:
        shipped = np.flatnonzero(model.catalog.active & model.supported)
        model._bundle = {
            "model_version": model.number,
            "algorithm": _served(model).name,
            "factors_algorithm": model.artifact.embedding.name,
            "min_support": model.min_support,
            "items": [model.catalog.external_ids[c] for c in shipped.tolist()],
            **model.artifact.embedding.device_bundle(shipped),
        }
    return model._bundle
