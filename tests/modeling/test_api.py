"""Recommendation endpoints: consent-aware answers, one shape, bounded parameters."""

from __future__ import annotations

import numpy as np
import pytest

from apps.consent.services import record_consents, set_restriction
from apps.events.services import deactivate_item
from apps.modeling.services import artifacts, train_model
from apps.modeling.services.serving import current_model
from apps.tenants.models import Scope
from tests.factories.events import grant_consent, withdraw_consent
from tests.factories.modeling import add_events, add_items, configure, planted_dataset

URL = "/api/v1/recommendations"
SESSION_URL = "/api/v1/recommendations/session"


@pytest.fixture(params=["als", "bm25", "ease"])
def trained(request, tenant):
    """A trained tenant, serving ALS, BM25 item-kNN and EASE in turn."""
    configure(tenant, model_algorithms=[request.param])
    planted = planted_dataset(tenant)
    version = train_model(tenant=tenant)
    assert version.algorithm == request.param
    return planted


def _seen(planted, subject: str) -> set[str]:
    from apps.events.models import Event

    return set(Event.objects.for_tenant(planted.tenant).filter(
        subject_key=planted.keys[subject]).values_list("item__external_id", flat=True))


def test_a_consenting_subject_gets_personalized_unseen_items_of_their_taste(trained, api):
    subject = trained.subjects[5]
    body = api.get(URL, {"subject": subject, "n": 5}).json()
    assert body["personalized"] is True
    assert body["reason"] is None
    assert body["model_version"] == 1
    items = [i["item"] for i in body["items"]]
    assert 0 < len(items) <= 5
    assert not set(items) & _seen(trained, subject)
    group = set(trained.groups[trained.group_of[subject]])
    assert items[0] in group
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_explanations_name_the_subjects_own_past_items(trained, api):
    subject = trained.subjects[2]
    body = api.get(URL, {"subject": subject, "n": 3, "explain": "true"}).json()
    seen = _seen(trained, subject)
    for item in body["items"]:
        assert item["because"], item
        assert {b["item"] for b in item["because"]} <= seen
        assert all(isinstance(b["weight"], float) for b in item["because"])


def test_seen_items_can_be_included(trained, api):
    subject = trained.subjects[0]
    body = api.get(URL, {"subject": subject, "n": 20, "exclude_seen": "false"}).json()
    assert {i["item"] for i in body["items"]} & _seen(trained, subject)


def test_a_withdrawal_takes_effect_on_the_very_next_request(trained, api):
    subject = trained.subjects[1]
    for _ in range(7):  # on PostgreSQL the key lookup and consent check are prepared by now
        assert api.get(URL, {"subject": subject}).json()["personalized"] is True
    withdraw_consent(trained.tenant, subject)
    body = api.get(URL, {"subject": subject}).json()
    assert body["personalized"] is False
    assert body["reason"] == "no_consent"
    assert body["items"]  # the DP popular list
    assert "because" not in body["items"][0]


@pytest.mark.parametrize(("change", "reason"), [
    ("session", "level_session"), ("off", "level_off"), ("restrict", "restricted")])
def test_levels_and_restriction_give_non_personalized_answers(tenant, api, change, reason):
    configure(tenant)
    planted = planted_dataset(tenant)
    train_model(tenant=tenant)
    subject = planted.subjects[0]
    key = planted.keys[subject]
    if change == "restrict":
        set_restriction(tenant=tenant, subject_key=key, restricted=True)
    else:
        record_consents(tenant=tenant, subject_key=key, decisions={}, level=change)
    body = api.get(URL, {"subject": subject}).json()
    assert body["personalized"] is False
    assert body["reason"] == reason


def test_unknown_subjects_and_tenants_without_a_model(tenant, api):
    configure(tenant)
    assert api.get(URL, {"subject": "nobody"}).json() == {
        "model_version": None, "personalized": False, "reason": "no_consent", "items": []}
    grant_consent(tenant, "new-person")
    assert api.get(URL, {"subject": "new-person"}).json()["reason"] == "no_model"
    planted_dataset(tenant)
    train_model(tenant=tenant)
    body = api.get(URL, {"subject": "new-person"}).json()
    assert body["reason"] == "unknown_subject"
    assert body["items"]


def test_inactive_items_never_appear(trained, api):
    subject = trained.subjects[4]
    first = api.get(URL, {"subject": subject, "n": 3}).json()["items"][0]["item"]
    deactivate_item(tenant=trained.tenant, external_id=first)
    for subject in trained.subjects[:8]:
        for body in (api.get(URL, {"subject": subject, "n": 100}).json(),
                     api.get(URL, {"subject": f"x-{subject}", "n": 100}).json(),
                     api.post(SESSION_URL, {"recent_items": [trained.groups[0][0]],
                                            "n": 100}, format="json").json()):
            assert first not in {i["item"] for i in body["items"]}


def test_categories_filter_the_items(trained, api):
    body = api.get(URL, {"subject": trained.subjects[0], "n": 100,
                         "categories": "group-2,group-3", "exclude_seen": "false"}).json()
    assert body["items"]
    allowed = set(trained.groups[2]) | set(trained.groups[3])
    assert {i["item"] for i in body["items"]} <= allowed


@pytest.mark.parametrize("query", [
    {}, {"subject": "s", "n": 0}, {"subject": "s", "n": 101}, {"subject": "s", "n": "ten"},
    {"subject": "s", "explain": "maybe"}, {"subject": ""}])
def test_bad_parameters_are_400_with_a_code(api, tenant, query):
    response = api.get(URL, query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_the_routes_need_the_recommendations_scope(tenant, make_client):
    client = make_client(tenant, [Scope.EVENTS_WRITE])
    assert client.get(URL, {"subject": "s"}).status_code == 403
    assert client.post(SESSION_URL, {"recent_items": ["a"]}, format="json").status_code == 403
    assert client.get("/api/v1/model-bundle").status_code == 403


def test_session_recommendations_come_from_the_recent_items_only(trained, api):
    recent = trained.groups[1][:3]
    body = api.post(SESSION_URL, {"recent_items": recent, "n": 5}, format="json").json()
    assert body["personalized"] is False
    assert body["reason"] == "session"
    items = [i["item"] for i in body["items"]]
    assert items
    assert not set(items) & set(recent)
    assert items[0] in trained.groups[1]


def test_session_requests_are_bounded(api, tenant):
    too_many = {"recent_items": [f"i{n}" for n in range(51)]}
    for body in (too_many, {"recent_items": []}, {"recent_items": "a"}, {"n": 5},
                 {"recent_items": ["a"], "n": 0}):
        response = api.post(SESSION_URL, body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"


def test_session_with_unknown_items_falls_back_to_popular(trained, api):
    body = api.post(SESSION_URL, {"recent_items": ["never-heard-of"]}, format="json").json()
    assert body["reason"] == "no_known_items"
    assert body["items"]


def _queries_of(api, method: str, *args, **kwargs) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = getattr(api, method)(*args, **kwargs)
    assert response.status_code == 200, response.content
    return [q["sql"] for q in captured.captured_queries]


def test_serving_queries_nothing_per_request_beyond_auth_and_consent(trained, api):
    subject = trained.subjects[3]
    api.get(URL, {"subject": subject, "explain": "true"})  # loads the model once
    personalized = _queries_of(api, "get", URL, {"subject": subject, "explain": "true"})
    session = _queries_of(api, "post", SESSION_URL, {"recent_items": trained.groups[0][:2]},
                          format="json")
    similar = _queries_of(api, "get", f"/api/v1/items/{trained.groups[1][0]}/similar")
    bundle = _queries_of(api, "get", "/api/v1/model-bundle")
    # The API key lookup carries the serving state; the subject's consent is the rest.
    for queries in (session, similar, bundle):
        assert len(queries) == 1, queries
        assert "tenants_apikey" in queries[0]
        assert "modeling_servingstate" in queries[0]
    assert "modeling_servingstate" in personalized[0]
    assert all("modeling_" not in sql for sql in personalized[1:]), personalized
    assert all("consent_" in sql for sql in personalized[1:]), personalized


def test_answers_below_level_full_cost_one_consent_statement_too(trained, api):
    """Most of a tenant's visitors may never have consented: their answer, and a lower
    level's, is told apart by the same one statement as a personalized one."""
    lowered = trained.subjects[5]
    record_consents(tenant=trained.tenant, subject_key=trained.keys[lowered], decisions={},
                    level="session")
    api.get(URL, {"subject": lowered})  # loads the model once
    for subject, reason in ((lowered, "level_session"), ("never-consented", "no_consent")):
        queries = _queries_of(api, "get", URL, {"subject": subject})
        assert len(queries) == 2, queries  # the key lookup, the consent check
        assert api.get(URL, {"subject": subject}).json()["reason"] == reason


def test_a_serving_state_change_between_requests_is_seen_by_the_next(trained, api):
    from apps.modeling.models import ServingState

    subject = trained.subjects[4]
    assert api.get(URL, {"subject": subject}).json()["personalized"]
    ServingState.objects.for_tenant(trained.tenant).update(active_version=None)
    body = api.get(URL, {"subject": subject}).json()
    assert body == {"model_version": None, "personalized": False, "reason": "no_model",
                    "items": []}


def test_a_new_activation_reloads_the_process_cache(trained, api):
    first = current_model(trained.tenant)
    train_model(tenant=trained.tenant)
    assert api.get(URL, {"subject": trained.subjects[0]}).json()["model_version"] == 2
    assert current_model(trained.tenant).version_id != first.version_id


def test_the_model_bundle_lets_a_client_score_on_device(trained, api):
    bundle = api.get("/api/v1/model-bundle").json()
    assert bundle["model_version"] == 1
    assert len(bundle["items"]) == len(bundle["item_factors"]) == 40
    gram = np.array(bundle["gram"])
    y = np.array(bundle["item_factors"])
    alpha = bundle["alpha"]
    # The client's own items, as confidences: the README's few lines of math.
    mine = {bundle["items"].index(i): 8.0 for i in trained.groups[2][:4]}
    a = gram.copy()
    b = np.zeros(bundle["factors"])
    for j, weight in mine.items():
        c = alpha * weight
        a += (c - 1.0) * np.outer(y[j], y[j])
        b += c * y[j]
    scores = y @ np.linalg.solve(a, b)
    # Same vector as the server's recalculate_user on the same items.
    model = current_model(trained.tenant)
    import scipy.sparse as sp

    cols = [model.catalog.column_of[bundle["items"][j]] for j in mine]
    row = sp.csr_matrix((np.full(len(cols), 8.0, np.float32), (np.zeros(len(cols)), cols)),
                        shape=(1, len(model.catalog.active)))
    server = model.artifact.embedding.score_session(row)
    order = [model.catalog.column_of[i] for i in bundle["items"]]
    np.testing.assert_allclose(scores, server[order], rtol=1e-3, atol=1e-4)
    top = [bundle["items"][j] for j in np.argsort(-scores) if j not in mine][:3]
    assert set(top) <= set(trained.groups[2])


def test_no_bundle_without_a_model(api, tenant):
    response = api.get("/api/v1/model-bundle")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_active_model"


# --- Similar items ------------------------------------------------------------------------


def test_similar_items_are_of_the_same_group(trained, api):
    item = trained.groups[3][0]
    body = api.get(f"/api/v1/items/{item}/similar", {"n": 5}).json()
    assert body["personalized"] is False
    items = [i["item"] for i in body["items"]]
    assert items
    assert item not in items
    assert items[0] in trained.groups[3]


def test_similar_items_need_k_distinct_subjects(tenant, api):
    configure(tenant, model_min_support=3)
    planted = planted_dataset(tenant)
    add_items(tenant, ["rare"])
    add_events(tenant, "collector", ["rare", planted.groups[0][0]],
               subject_key=grant_consent(tenant, "collector"))
    train_model(tenant=tenant)
    body = api.get("/api/v1/items/rare/similar").json()
    assert body == {"model_version": 1, "personalized": False,
                    "reason": "insufficient_support", "items": []}
    popular = api.get(f"/api/v1/items/{planted.groups[0][0]}/similar", {"n": 100}).json()
    assert "rare" not in {i["item"] for i in popular["items"]}


@pytest.fixture(params=["als", "bm25"])
def with_rare(request, tenant):
    """A trained tenant with k = 3 and one item, ``rare``, bought by two subjects only
    (each with items of group 0)."""
    configure(tenant, model_min_support=3, model_algorithms=[request.param])
    planted = planted_dataset(tenant)
    add_items(tenant, ["rare"])
    for n in range(2):
        add_events(tenant, f"collector-{n}", ["rare", *planted.groups[0][:4]],
                   subject_key=grant_consent(tenant, f"collector-{n}"))
    train_model(tenant=tenant)
    return planted


def _floor_off(tenant) -> None:
    from apps.modeling.services import serving

    configure(tenant, model_min_support=1)
    serving.clear_cache()  # the floor is read when a process loads the model


def test_session_answers_never_list_items_below_the_support_floor(with_rare, api):
    group = with_rare.groups[0]
    asked = {"recent_items": group[:3], "n": 100}
    body = api.post(SESSION_URL, asked, format="json").json()
    assert body["reason"] == "session"
    items = {i["item"] for i in body["items"]}
    assert items
    assert "rare" not in items
    _floor_off(with_rare.tenant)  # the same question without the floor lists it
    body = api.post(SESSION_URL, asked, format="json").json()
    assert "rare" in {i["item"] for i in body["items"]}


def test_an_item_below_the_support_floor_does_not_seed_a_session_answer(with_rare, api):
    body = api.post(SESSION_URL, {"recent_items": ["rare"], "n": 5}, format="json").json()
    # Its neighbours would be its two buyers' other items: popular items instead.
    assert body["personalized"] is False
    assert body["reason"] == "insufficient_support"
    assert body["items"]
    assert "rare" not in {i["item"] for i in body["items"]}
    mixed = api.post(SESSION_URL, {"recent_items": ["rare", with_rare.groups[2][0]]},
                     format="json").json()
    assert mixed["reason"] == "session"
    assert "rare" not in {i["item"] for i in mixed["items"]}


def test_the_model_bundle_ships_no_item_below_the_support_floor(with_rare, api):
    bundle = api.get("/api/v1/model-bundle").json()
    assert bundle["min_support"] == 3
    assert "rare" not in bundle["items"]
    assert len(bundle["items"]) == len(bundle["item_factors"]) == 40
    model = current_model(with_rare.tenant)
    assert len(bundle["gram"]) == bundle["factors"]  # G is over every item's factors
    rows = [model.catalog.column_of[i] for i in bundle["items"]]
    np.testing.assert_allclose(np.array(bundle["item_factors"]),
                               model.artifact.embedding.item_factors[rows], atol=1e-5)
    _floor_off(with_rare.tenant)
    assert "rare" in api.get("/api/v1/model-bundle").json()["items"]


def test_the_model_bundle_names_the_algorithm_that_serves(trained, api):
    from apps.modeling.selectors import get_active_model_version

    bundle = api.get("/api/v1/model-bundle").json()
    served = get_active_model_version(tenant=trained.tenant).algorithm
    assert bundle["algorithm"] == served == type(current_model(trained.tenant).recommender).name
    assert bundle["factors_algorithm"] == "als"  # the item embedding, whichever serves


def test_similar_items_of_an_unknown_item_is_404(api, tenant):
    response = api.get("/api/v1/items/nope/similar")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_similar_items_bounds_n(api, tenant):
    assert api.get("/api/v1/items/x/similar", {"n": 500}).status_code == 400


def test_the_artifact_never_holds_other_tenants_subjects(trained, other_tenant):
    configure(other_tenant)
    other = planted_dataset(other_tenant, prefix="o-", seed=4)
    version = train_model(tenant=other_tenant)
    art = artifacts.load(version.artifact_path, version.artifact_sha256)
    mine = {k.encode() for k in trained.keys.values()}
    assert not mine & set(art.user_keys.tolist())
    assert len(art.user_keys) == len(other.subjects)


def test_another_tenants_item_is_the_same_404_as_a_missing_one(trained, other_api):
    theirs = other_api.get(f"/api/v1/items/{trained.groups[0][0]}/similar")
    missing = other_api.get("/api/v1/items/no-such-item/similar")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
