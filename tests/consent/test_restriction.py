"""Restriction of processing (GDPR Art. 18) is a freeze: a restricted subject's data is kept
and used for nothing (training, serving), and ``DELETE /api/v1/subjects/{subject}/restriction``
or the subject-state admin's action lifts it, audited. (Retention's side:
tests/retention/test_restriction.py.) The platform has no path that sends subject data to a
third party (no sale/sharing export; the model bundle holds item factors only), so there is
nothing more to freeze."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.consent.models import ConsentRecord, ConsentState, SubjectState
from apps.consent.services import set_restriction
from apps.modeling.models import ModelVersion
from apps.modeling.services import activate_version, train_model
from apps.modeling.services.dataset import snapshot_training_data
from apps.tenants.models import Membership, Scope
from apps.tenants.services import pseudonymize
from tests.factories.events import grant_consent
from tests.factories.modeling import configure, planted_dataset
from tests.factories.tenants import MembershipFactory

RAW_ID = "restricted-subject-9c1e@example.com"
URL = f"/api/v1/subjects/{RAW_ID}/restriction"
CONSENT_URL = f"/api/v1/subjects/{RAW_ID}/consent"
RECOMMENDATIONS = "/api/v1/recommendations"


def _written(tenant) -> tuple[int, int, int, int]:
    return (ConsentRecord.objects.for_tenant(tenant).count(),
            ConsentState.objects.for_tenant(tenant).count(),
            SubjectState.objects.for_tenant(tenant).count(),
            AuditEvent.objects.for_tenant(tenant).count())


def _restricted(tenant, raw_id: str = RAW_ID) -> str:
    key = grant_consent(tenant, raw_id)
    set_restriction(tenant=tenant, subject_key=key, restricted=True)
    return key


def _is_restricted(tenant, key: str) -> bool:
    return SubjectState.objects.for_tenant(tenant).get(subject_key=key).restricted


# --- The API -----------------------------------------------------------------------------


def test_delete_lifts_the_restriction_and_answers_the_subjects_consent(tenant, api):
    key = _restricted(tenant)
    assert api.get(CONSENT_URL).json()["flags"]["restricted"] is True

    response = api.delete(URL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == api.get(CONSENT_URL).json()
    assert body["flags"]["restricted"] is False
    assert body["level"] == "full"  # the subject's own choices apply again
    assert body["history"][-1]["kind"] == "restriction"
    assert body["history"][-1]["granted"] is False
    assert not _is_restricted(tenant, key)


def test_the_lift_is_a_ledger_row_and_an_audit_entry_naming_the_key(tenant, api, make_client):
    key = _restricted(tenant)
    client = make_client(tenant, scopes=[Scope.PRIVACY_WRITE])
    client.delete(URL)
    record = ConsentRecord.objects.for_tenant(tenant).filter(subject_key=key).latest("id")
    assert (record.kind, record.granted, record.source) == ("restriction", False, "api")
    entry = AuditEvent.objects.for_tenant(tenant).latest("sequence")
    assert entry.action == "consent.recorded"
    assert entry.actor_type == "api_key"
    assert entry.subject_token
    assert entry.details["changes"] == [{"kind": "restriction", "source": "api",
                                         "granted": False}]
    assert key not in str(entry.details)


@pytest.mark.parametrize("known", [False, True])
def test_a_subject_not_restricted_gets_the_consent_answer_and_nothing_is_written(
        tenant, api, known):
    if known:
        grant_consent(tenant, RAW_ID)
    before = _written(tenant)
    response = api.delete(URL)
    assert response.status_code == 200
    assert response.json() == api.get(CONSENT_URL).json()
    assert response.json()["flags"]["restricted"] is False
    assert _written(tenant) == before


def test_lifting_needs_the_privacy_write_scope(tenant, make_client):
    key = _restricted(tenant)
    for scopes in ([Scope.CONSENT_WRITE], [Scope.CONSENT_READ, Scope.CONSENT_WRITE]):
        response = make_client(tenant, scopes=scopes).delete(URL)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "missing_scope"
    assert _is_restricted(tenant, key)
    assert make_client(tenant, scopes=[Scope.PRIVACY_WRITE]).delete(URL).status_code == 200
    assert not _is_restricted(tenant, key)


def test_a_consent_key_may_place_a_restriction_but_not_lift_it(tenant, make_client):
    consent_key = make_client(tenant, scopes=[Scope.CONSENT_READ, Scope.CONSENT_WRITE])
    put = consent_key.put(CONSENT_URL, {"flags": {"restricted": True}}, format="json")
    assert put.json()["flags"]["restricted"] is True
    before = _written(tenant)

    refused = consent_key.put(CONSENT_URL, {"flags": {"restricted": False}}, format="json")

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "missing_scope"
    assert _written(tenant) == before
    both = make_client(tenant, scopes=[Scope.CONSENT_WRITE, Scope.PRIVACY_WRITE])
    lifted = both.put(CONSENT_URL, {"flags": {"restricted": False}}, format="json")
    assert lifted.json()["flags"]["restricted"] is False


def test_restricted_false_for_a_subject_not_restricted_stays_a_no_op(tenant, make_client):
    consent_key = make_client(tenant, scopes=[Scope.CONSENT_READ, Scope.CONSENT_WRITE])
    response = consent_key.put(CONSENT_URL, {"flags": {"restricted": False, "objected": False}},
                               format="json")
    assert response.status_code == 200
    assert not ConsentRecord.objects.for_tenant(tenant).exists()


def test_the_raw_subject_id_is_pseudonymized_and_never_echoed(tenant, api):
    key = _restricted(tenant, "a/b c")
    response = api.delete("/api/v1/subjects/a%2Fb%20c/restriction")
    assert response.status_code == 200
    assert "a/b c" not in response.content.decode()
    assert key == pseudonymize(tenant, "a/b c")
    assert not _is_restricted(tenant, key)


def test_other_methods_are_not_allowed(api):
    assert api.get(URL).status_code == 405
    assert api.put(URL, {}, format="json").status_code == 405


def test_the_route_is_in_the_openapi_schema(db):
    paths = Client().get("/api/schema/?format=json").json()["paths"]
    operation = paths["/api/v1/subjects/{subject}/restriction"]["delete"]
    assert operation["operationId"] == "subject_restriction_lift"
    assert "200" in operation["responses"]


# --- Training and serving -----------------------------------------------------------------


def test_a_restricted_subject_is_neither_trained_on_nor_served_until_lifted(tenant, api):
    configure(tenant)
    planted = planted_dataset(tenant)
    subject = planted.subjects[0]
    key = planted.keys[subject]
    api.put(f"/api/v1/subjects/{subject}/consent", {"flags": {"restricted": True}},
            format="json")

    assert key not in snapshot_training_data(tenant=tenant).user_keys
    first = train_model(tenant=tenant)
    assert first.data_stats["subjects_excluded_by_consent"] == 1
    body = api.get(RECOMMENDATIONS, {"subject": subject}).json()
    assert (body["personalized"], body["reason"]) == (False, "restricted")
    assert body["items"]  # the non-personalized answer

    assert api.delete(f"/api/v1/subjects/{subject}/restriction").status_code == 200

    assert key in snapshot_training_data(tenant=tenant).user_keys
    second = train_model(tenant=tenant)
    if second.status != ModelVersion.Status.ACTIVE:
        activate_version(tenant=tenant, version=second)
    body = api.get(RECOMMENDATIONS, {"subject": subject}).json()
    assert (body["personalized"], body["reason"]) == (True, None)


# --- The admin ----------------------------------------------------------------------------


def _admin(tenant, role: str) -> Client:
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return client


def _lift_in_admin(client: Client, *states: SubjectState):
    return client.post("/admin/consent/subjectstate/", {
        "action": "lift_restriction", "_selected_action": [s.pk for s in states]}, follow=True)


def test_an_owner_lifts_a_restriction_in_the_admin_audited(tenant):
    key = _restricted(tenant)
    state = SubjectState.objects.for_tenant(tenant).get(subject_key=key)
    response = _lift_in_admin(_admin(tenant, Membership.Role.OWNER), state)
    assert "Restriction lifted for 1 subject(s)." in response.content.decode()
    assert not _is_restricted(tenant, key)
    record = ConsentRecord.objects.for_tenant(tenant).filter(subject_key=key).latest("id")
    assert (record.kind, record.granted, record.source) == ("restriction", False, "admin")
    entry = AuditEvent.objects.for_tenant(tenant).filter(action="consent.recorded").latest(
        "sequence")
    assert entry.actor_type == "user"
    assert entry.details["changes"] == [{"kind": "restriction", "source": "admin",
                                         "granted": False}]


def test_a_viewer_cannot_lift_and_another_tenants_subject_is_out_of_reach(tenant,
                                                                          other_tenant):
    key = _restricted(tenant)
    state = SubjectState.objects.for_tenant(tenant).get(subject_key=key)
    response = _lift_in_admin(_admin(tenant, Membership.Role.VIEWER), state)
    assert "skipped" in response.content.decode()
    assert _is_restricted(tenant, key)

    _lift_in_admin(_admin(other_tenant, Membership.Role.OWNER), state)
    assert _is_restricted(tenant, key)
