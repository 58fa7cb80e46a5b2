"""The ``Recommender`` interface: every registered algorithm goes through training, serving,
the bundle and erasure; a new algorithm is one registered class and nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from apps.events.models import Event
from apps.modeling.config import modeling_settings
from apps.modeling.models import ModelVersion
from apps.modeling.recommenders import (
    Recommender,
    Setting,
    algorithm_names,
    get_recommender,
    recommenders,
    register,
    unregister,
)
from apps.modeling.services import artifacts, artifacts_holding_subject, erase_subject, train_model
from tests.factories.modeling import configure, planted_dataset

URL = "/api/v1/recommendations"


@pytest.fixture
def planted(tenant):
    configure(tenant, model_activation_tolerance=1.0)
    return planted_dataset(tenant)


def _stored(version: ModelVersion) -> artifacts.Artifact:
    version.refresh_from_db()
    return artifacts.load(version.artifact_path, version.artifact_sha256)


def _round_trip(planted: Any, api: Any, name: str, subject: str,
                capture: Any) -> None:
    """Train serving ``name`` -> serve (user, explain, session, similar) -> bundle ->
    erase one subject, who must be gone from every artifact and every model's arrays."""
    tenant, key = planted.tenant, planted.keys[subject]
    configure(tenant, model_algorithms=[name])
    version = train_model(tenant=tenant)
    assert version.algorithm == name
    assert version.status == ModelVersion.Status.ACTIVE
    artifact = _stored(version)
    assert artifact.recommender.name == name
    assert artifact.embedding.embeds_items

    body = api.get(URL, {"subject": subject, "n": 5, "explain": "true"}).json()
    assert body["personalized"] is True, body
    assert body["model_version"] == version.number
    assert 0 < len(body["items"]) <= 5
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    own = set(Event.objects.for_tenant(tenant).filter(subject_key=key)
              .values_list("item__external_id", flat=True))
    assert not {i["item"] for i in body["items"]} & own  # seen items excluded
    for item in body["items"]:
        assert {b["item"] for b in item["because"]} <= own
    session = api.post(f"{URL}/session", {"recent_items": planted.groups[0][:2]},
                       format="json").json()
    assert session["reason"] == "session"
    assert session["items"]
    similar = api.get(f"/api/v1/items/{planted.groups[1][0]}/similar")
    assert similar.status_code == 200
    bundle = api.get("/api/v1/model-bundle").json()
    assert bundle["algorithm"] == name
    assert len(bundle["items"]) == len(bundle["item_factors"]) == len(artifact.item_ids)

    n_users = len(artifact.user_keys)
    user_aligned = [(m.name, array_name) for m in artifact.models()
                    for array_name, array in m.to_arrays().items()
                    if array.ndim and array.shape[0] == n_users]
    with capture(execute=True):
        assert erase_subject(tenant, key) >= 1
    assert artifacts_holding_subject(tenant, key) == []
    patched = _stored(version)
    assert patched.user_row(key) is None
    assert patched.user_items.shape[0] == n_users - 1
    assert [m.name for m in patched.models()] == [m.name for m in artifact.models()]
    for model_name, array_name in user_aligned:  # their row is gone from each model
        (model,) = [m for m in patched.models() if m.name == model_name]
        assert model.to_arrays()[array_name].shape[0] == n_users - 1
    other = next(s for s in planted.subjects if s != subject)
    assert api.get(URL, {"subject": other}).json()["personalized"] is True
    assert api.get(URL, {"subject": subject}).json()["reason"] == "unknown_subject"


def test_every_registered_algorithm_trains_serves_bundles_and_forgets_a_subject(
        planted, api, django_capture_on_commit_callbacks):
    names = algorithm_names()
    assert {"als", "bm25"} <= set(names)
    for n, name in enumerate(names):
        _round_trip(planted, api, name, planted.subjects[n], django_capture_on_commit_callbacks)


def test_the_allowed_algorithms_are_the_registered_ones(tenant):
    choices = dict(ModelVersion._meta.get_field("algorithm").choices)
    assert set(choices) == set(algorithm_names())
    configure(tenant, model_algorithms=["no-such", "bm25"])
    assert modeling_settings(tenant).algorithms == ("bm25",)
    configure(tenant, model_algorithms="nonsense")
    assert modeling_settings(tenant).algorithms == algorithm_names()


# --- A throw-away algorithm ------------------------------------------------------------------


class MostPopular(Recommender):
    """Distinct subjects per item; the same list for everyone. Defined here only."""

    name = "popular"
    label = "Most popular (test)"
    logic = "It recommends the items most people chose."
    settings = {"model_popular_smoothing": Setting(1.0, float, 0.0, 100.0)}

    def __init__(self, params: Mapping[str, Any], counts: np.ndarray | None = None) -> None:
        super().__init__(params)
        self.counts = counts

    @classmethod
    def base_params(cls, cfg: Any) -> dict[str, Any]:
        return {"smoothing": cfg.algorithm["model_popular_smoothing"]}

    def fit(self, matrix: Any, on_iteration: Any = None) -> None:
        self.counts = np.asarray((matrix > 0).sum(0)).ravel().astype(np.float32)

    def fit_full(self, matrix: Any) -> MostPopular:
        served = MostPopular(self.params)
        served.fit(matrix)
        return served

    def top_items(self, users: np.ndarray, user_items: Any, n: int) -> np.ndarray:
        scores = np.tile(self.counts + self.params["smoothing"], (len(users), 1))
        scores[user_items.nonzero()] = -np.inf
        return np.argsort(-scores, axis=1, kind="stable")[:, :n]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"popular_counts": self.counts}

    @classmethod
    def from_arrays(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    n_items: int) -> MostPopular:
        return cls(params, arrays["popular_counts"])

    def score_subject(self, row: int, user_items: Any) -> np.ndarray:
        return self.counts + self.params["smoothing"]

    def score_session(self, interactions: Any) -> np.ndarray:
        return self.counts + self.params["smoothing"]

    def similar(self, column: int) -> np.ndarray:
        return self.counts + self.params["smoothing"]

    def explain(self, row: int, user_items: Any, columns: np.ndarray, n: int
                ) -> list[list[tuple[int, float]]]:
        return [[] for _ in columns]

    def without_subject(self, row: int, remaining: Any, touched: np.ndarray) -> MostPopular:
        counts = self.counts.copy()
        counts[touched] -= 1
        return MostPopular(self.params, counts)


@pytest.fixture
def most_popular():
    register(MostPopular)
    yield MostPopular
    unregister(MostPopular.name)


def test_a_throw_away_algorithm_is_picked_up_everywhere_without_edits(
        most_popular, planted, api, django_capture_on_commit_callbacks):
    assert get_recommender("popular") is MostPopular
    assert "popular" in dict(ModelVersion._meta.get_field("algorithm").choices)
    configure(planted.tenant, model_algorithms=["popular"], model_popular_smoothing=500)
    cfg = modeling_settings(planted.tenant)
    assert cfg.algorithms == ("popular",)
    assert cfg.algorithm["model_popular_smoothing"] == 1.0  # out of range: the default
    configure(planted.tenant, model_popular_smoothing=2.5)
    # The every-algorithm test, unchanged, now covers it too.
    test_every_registered_algorithm_trains_serves_bundles_and_forgets_a_subject(
        planted, api, django_capture_on_commit_callbacks)
    version = ModelVersion.objects.for_tenant(planted.tenant).get(algorithm="popular")
    assert [c["algorithm"] for c in version.search] == ["als", "popular"]
    assert version.params["chosen"] == {"smoothing": 2.5}
    counts = _stored(version).recommender.to_arrays()["popular_counts"]
    assert counts.sum() > 0


def test_an_algorithm_without_its_erasure_patch_cannot_be_registered():
    class NoErasure(Recommender):  # everything but without_subject
        name = "noerase"
        label = "No erasure"
        base_params = MostPopular.base_params
        fit = MostPopular.fit
        fit_full = MostPopular.fit_full
        top_items = MostPopular.top_items
        to_arrays = MostPopular.to_arrays
        from_arrays = MostPopular.from_arrays
        score_subject = MostPopular.score_subject
        score_session = MostPopular.score_session
        similar = MostPopular.similar
        explain = MostPopular.explain

    with pytest.raises(TypeError, match="without_subject"):
        register(NoErasure)
    assert "noerase" not in algorithm_names()
    with pytest.raises(TypeError, match="already registered"):
        register(type("Als2", (MostPopular,), {"name": "als"}))
    assert [r.name for r in recommenders()][:2] == ["als", "bm25"]
