"""Subject controls reach the live model at once (issue 14, point 1), end to end through the
API: a level of "session" or "off", an objection, a restriction, a withdrawal and a
rectification take the subject out of every stored model before the call returns, the
retrain is requested, and explanations never name a removed interaction. Runs on SQLite
and on PostgreSQL (``DATABASE_URL``)."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.events.models import Event
from apps.modeling.models import ModelVersion, ServingState
from apps.modeling.services import artifacts, artifacts_holding_subject, train_model
from apps.privacy.portal import LEVEL_CHOICES
from apps.privacy.services import sign_portal_token
from tests.db_search import columns_containing
from tests.factories.events import grant_consent
from tests.factories.modeling import add_events, add_items, configure, planted_dataset

RECOMMENDATIONS = "/api/v1/recommendations"
#: What a forgotten subject's key may still be in: the consent ledger and state (the proof
#: of their choice), the audit chain's erasable token, and the lineage of the model versions
#: that had learnt from them (until the retrain), as the portal's text says.
PROOF_AND_LINEAGE = {
    "consent_consentrecord.subject_key", "consent_consentstate.subject_key",
    "consent_subjectstate.subject_key", "audit_subjectaudittoken.subject_key",
    "modeling_modelversion.removed_subject_keys",
}


def _consent_url(subject: str) -> str:
    return f"/api/v1/subjects/{subject}/consent"


def _active(tenant) -> artifacts.Artifact:
    version = ModelVersion.objects.for_tenant(tenant).get(status="active")
    return artifacts.load(version.artifact_path, version.artifact_sha256)


def _events(tenant, key: str) -> int:
    return Event.objects.for_tenant(tenant).filter(subject_key=key).count()


def _retrain_reason(tenant) -> str | None:
    state = ServingState.objects.for_tenant(tenant).get()
    return state.retrain_reason if state.retrain_requested_at else None


@pytest.fixture
def trained(tenant):
    configure(tenant, model_algorithms=["bm25"], model_retrain_debounce_seconds=3600)
    planted = planted_dataset(tenant, groups=3, subjects_per_group=8)
    train_model(tenant=tenant)
    return planted


def test_level_session_through_the_api_forgets_the_subject_before_the_call_returns(
        trained, api, django_capture_on_commit_callbacks):
    tenant = trained.tenant
    subject = trained.subjects[3]
    key = trained.keys[subject]
    assert api.get(RECOMMENDATIONS, {"subject": subject}).json()["personalized"] is True
    assert _active(tenant).user_row(key) is not None

    with django_capture_on_commit_callbacks(execute=True):
        response = api.put(_consent_url(subject), {"level": "session"}, format="json")
    assert response.status_code == 200
    assert response.json()["level"] == "session"

    body = api.get(RECOMMENDATIONS, {"subject": subject, "explain": "true"}).json()
    assert body["personalized"] is False
    assert body["reason"] == "level_session"
    assert all("because" not in item for item in body["items"])
    assert _events(tenant, key) == 0
    assert set(columns_containing(key)) <= PROOF_AND_LINEAGE
    assert _active(tenant).user_row(key) is None
    assert artifacts_holding_subject(tenant, key) == []
    assert _retrain_reason(tenant) == "subject_control"
    # The retrain that removes the rest: trained without them, lineage emptied with the
    # patched artifact (pruned once the retrain is active).
    with django_capture_on_commit_callbacks(execute=True):
        train_model(tenant=tenant)
    assert _active(tenant).user_row(key) is None
    assert "modeling_modelversion.removed_subject_keys" not in columns_containing(key)


@pytest.mark.parametrize(("body", "history_kept"), [
    ({"level": "off"}, False),
    ({"flags": {"objected": True}}, False),
    ({"purposes": {"personalization": False}}, False),
    ({"flags": {"restricted": True}}, True),  # Art. 18: kept, frozen, used for nothing
], ids=["level_off", "objection", "withdrawal", "restriction"])
def test_each_control_takes_the_subject_out_of_the_model_in_the_same_call(
        trained, api, django_capture_on_commit_callbacks, body, history_kept):
    tenant = trained.tenant
    subject = trained.subjects[5]
    key = trained.keys[subject]
    events = _events(tenant, key)
    other = trained.keys[trained.subjects[6]]

    with django_capture_on_commit_callbacks(execute=True):
        assert api.put(_consent_url(subject), body, format="json").status_code == 200

    assert _active(tenant).user_row(key) is None
    assert artifacts_holding_subject(tenant, key) == []
    assert _events(tenant, key) == (events if history_kept else 0)
    assert _active(tenant).user_row(other) is not None  # nobody else is touched
    assert _retrain_reason(tenant) in {"subject_control", "withdrawal"}
    assert api.get(RECOMMENDATIONS, {"subject": subject}).json()["personalized"] is False


def test_a_consent_change_that_keeps_full_personalization_leaves_the_model_alone(
        trained, api, django_capture_on_commit_callbacks):
    subject = trained.subjects[0]
    with django_capture_on_commit_callbacks(execute=True):
        api.put(_consent_url(subject), {"purposes": {"analytics": False}}, format="json")
    assert _active(trained.tenant).user_row(trained.keys[subject]) is not None
    assert _retrain_reason(trained.tenant) is None


@pytest.fixture
def fan(tenant):
    """A subject whose purchases are the only link between ``liked`` and ``rare``: the two
    items are neighbours because of them alone."""
    configure(tenant, model_algorithms=["bm25"], model_retrain_debounce_seconds=3600)
    planted = planted_dataset(tenant, groups=3, subjects_per_group=8)
    add_items(tenant, ["rare"])
    liked = planted.groups[1][0]
    key = grant_consent(tenant, "fan")
    add_events(tenant, "fan", [*planted.groups[0][:5], "rare", liked], subject_key=key,
               start_minutes_ago=500)
    add_events(tenant, "collector", ["rare", planted.groups[2][0]],
               subject_key=grant_consent(tenant, "collector"), start_minutes_ago=400)
    train_model(tenant=tenant)
    planted.keys["fan"] = key
    return planted, liked


def _neighbours(api, item: str) -> set[str]:
    body = api.get(f"/api/v1/items/{item}/similar", {"n": 100}).json()
    return {i["item"] for i in body["items"]}


def _explained(api, subject: str) -> tuple[bool, set[str]]:
    body = api.get(RECOMMENDATIONS, {"subject": subject, "n": 20, "explain": "true"}).json()
    return body["personalized"], {b["item"] for item in body["items"]
                                  for b in item.get("because", [])}


def test_rectified_interactions_are_never_named_and_their_neighbours_no_longer_count_them(
        fan, api, django_capture_on_commit_callbacks):
    planted, liked = fan
    tenant, key = planted.tenant, planted.keys["fan"]
    assert "rare" in _neighbours(api, liked)
    personalized, because = _explained(api, "fan")
    assert personalized
    assert liked in because
    wrong = Event.objects.for_tenant(tenant).get(subject_key=key, item__external_id=liked)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/privacy-requests", {
            "kind": "rectification", "subject": "fan",
            "details": {"delete_events": [wrong.event_id]}}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "completed"

    assert liked not in _explained(api, "fan")[1]
    assert "rare" not in _neighbours(api, liked)
    assert artifacts_holding_subject(tenant, key) == []
    assert _events(tenant, key) == 6  # the other interactions stay
    assert _retrain_reason(tenant) == "rectification"
    # After the retrain they are personalized again, from what remains only.
    train_model(tenant=tenant)
    personalized, because = _explained(api, "fan")
    assert personalized
    assert because
    assert liked not in because
    assert "rare" not in _neighbours(api, liked)


def test_a_rectification_naming_no_interaction_of_theirs_leaves_the_model_alone(
        fan, api, django_capture_on_commit_callbacks):
    planted, _ = fan
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/v1/privacy-requests", {
            "kind": "rectification", "subject": "fan",
            "details": {"delete_events": ["no-such-event"]}}, format="json")
    assert artifacts_holding_subject(planted.tenant, planted.keys["fan"])
    assert _retrain_reason(planted.tenant) is None


@pytest.mark.parametrize("level", ["session", "off"])
def test_the_portal_says_what_a_level_does_and_does_it(
        trained, django_capture_on_commit_callbacks, level):
    """The preference center's words for the level, held to the behaviour."""
    tenant = trained.tenant
    subject = trained.subjects[2]
    key = trained.keys[subject]
    portal = Client()
    start = portal.get(f"/privacy/{tenant.slug}/start",
                       {"token": sign_portal_token(tenant=tenant, subject=subject)})
    assert start.status_code in (200, 302)
    page = portal.get(f"/privacy/{tenant.slug}/preferences").content.decode()
    label, hint = {value: (label, hint) for value, label, hint in LEVEL_CHOICES}[level]
    assert str(label) in page
    assert str(hint) in page
    assert "interactions are deleted and the recommendation models forget you at once" in hint
    assert "Only this choice is kept, as proof of it, and, until the models are retrained, " \
           "which of them had learnt from you" in hint

    with django_capture_on_commit_callbacks(execute=True):
        saved = portal.post(f"/privacy/{tenant.slug}/preferences",
                            {"purpose": ["personalization"], "level": level})
    assert saved.status_code == 200, saved.content.decode()[:500]

    assert _events(tenant, key) == 0                          # interactions deleted
    assert artifacts_holding_subject(tenant, key) == []       # the models forget them
    kept = set(columns_containing(key)) - {"privacy_portalsession.subject_key"}
    assert kept <= PROOF_AND_LINEAGE                          # only the proof and lineage
    assert "consent_consentrecord.subject_key" in kept
    with django_capture_on_commit_callbacks(execute=True):   # until the models are retrained
        train_model(tenant=tenant)
    assert "modeling_modelversion.removed_subject_keys" not in columns_containing(key)


def test_removing_an_interaction_in_the_portal_reaches_the_model_before_the_page_returns(
        fan, api, django_capture_on_commit_callbacks):
    planted, liked = fan
    tenant, key = planted.tenant, planted.keys["fan"]
    wrong = Event.objects.for_tenant(tenant).get(subject_key=key, item__external_id=liked)
    portal = Client()
    portal.get(f"/privacy/{tenant.slug}/start",
               {"token": sign_portal_token(tenant=tenant, subject="fan")})

    with django_capture_on_commit_callbacks(execute=True):
        response = portal.post(f"/privacy/{tenant.slug}/my-data", {"event": [wrong.event_id]})
    assert response.status_code == 302

    assert artifacts_holding_subject(tenant, key) == []
    assert liked not in _explained(api, "fan")[1]
    assert "rare" not in _neighbours(api, liked)
    assert _retrain_reason(tenant) == "rectification"


def test_lifting_a_restriction_below_full_deletes_the_history_it_kept(
        trained, django_capture_on_commit_callbacks):
    from apps.consent.services import record_consents, set_restriction

    tenant = trained.tenant
    key = trained.keys[trained.subjects[4]]
    with django_capture_on_commit_callbacks(execute=True):
        set_restriction(tenant=tenant, subject_key=key, restricted=True)
        record_consents(tenant=tenant, subject_key=key, decisions={}, level="session")
    assert _events(tenant, key) > 0  # frozen while the restriction holds
    with django_capture_on_commit_callbacks(execute=True):
        set_restriction(tenant=tenant, subject_key=key, restricted=False)
    assert _events(tenant, key) == 0  # level "session": nothing stored
