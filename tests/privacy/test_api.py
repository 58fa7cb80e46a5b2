"""``POST /api/v1/privacy-requests`` and ``GET /api/v1/privacy-requests/{id}``."""

from __future__ import annotations

import io
import zipfile

import pytest

from apps.consent.selectors import get_subject_consent
from apps.consent.services import create_purpose
from apps.events.models import Event
from apps.privacy.models import PrivacyRequest
from apps.tenants.services import pseudonymize
from tests.db_search import columns_containing
from tests.factories.privacy import seed_subject

URL = "/api/v1/privacy-requests"
STATUSES = {"received", "verifying", "verified", "in_progress", "completed", "rejected"}


def _post(api, oncommit, **body):
    with oncommit():
        return api.post(URL, body, format="json")


def test_a_request_answers_id_status_and_due_date(tenant, api, oncommit):
    response = _post(api, oncommit, kind="erasure", subject="user-1", regime="gdpr")
    assert response.status_code == 201
    body = response.json()
    assert {"id", "status", "due_at"} <= set(body)
    assert body["status"] in STATUSES
    assert body["extension"] is None
    assert body["verification"]["method"] == "tenant_attested"
    assert api.get(f"{URL}/{body['id']}").json()["status"] == "completed"


def test_the_regime_defaults_to_the_tenants(tenant, api, oncommit):
    tenant.default_regime = "ccpa"
    tenant.save()
    body = _post(api, oncommit, kind="access", subject="user-1").json()
    assert body["regime"] == "ccpa"


def test_the_raw_subject_id_is_neither_stored_nor_echoed(tenant, api, oncommit):
    response = _post(api, oncommit, kind="restriction", subject="raw-id-7fa3c2")
    assert "raw-id-7fa3c2" not in response.content.decode()
    assert columns_containing("raw-id-7fa3c2") == []


def test_the_privacy_write_scope_is_required(tenant, make_client, oncommit):
    client = make_client(tenant, ["events:write"])
    response = _post(client, oncommit, kind="access", subject="user-1")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert client.get(f"{URL}/1").status_code == 403


@pytest.mark.parametrize("body", [
    {"kind": "forget-me", "subject": "u"},
    {"kind": "erasure"},
    {"kind": "erasure", "subject": "u", "regime": "lgpd"},
    {"kind": "erasure", "subject": "u", "extra": 1},
    {"kind": "erasure", "subject": "u", "details": {"consents": {}}},
    {"kind": "rectification", "subject": "u", "details": {"delete_events": "all"}},
])
def test_invalid_bodies_are_refused_with_the_error_shape(tenant, api, oncommit, body):
    response = _post(api, oncommit, **body)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not PrivacyRequest.all_tenants.exists()


def test_another_tenants_request_is_a_404_like_a_missing_one(tenant, other_tenant, api,
                                                            other_api, oncommit):
    theirs = _post(other_api, oncommit, kind="access", subject="user-1").json()
    foreign = api.get(f"{URL}/{theirs['id']}")
    missing = api.get(f"{URL}/999999")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert api.get(f"{URL}/{10**30}").json() == missing.json()


def test_restriction_and_objection_are_applied_before_the_answer(tenant, api, oncommit):
    key = seed_subject(tenant, "user-1")
    body = _post(api, oncommit, kind="restriction", subject="user-1").json()
    assert body["status"] == "completed"
    assert body["result"]["applied"] == {"restricted": True}
    _post(api, oncommit, kind="objection", subject="user-1")
    view = get_subject_consent(tenant=tenant, subject_key=key).view
    assert view.restricted
    assert view.objected


def test_opt_out_withdraws_every_sale_or_sharing_purpose(tenant, api, oncommit):
    key = seed_subject(tenant, "user-1")
    body = _post(api, oncommit, kind="opt_out", subject="user-1", regime="ccpa").json()
    assert body["result"]["applied"] == {"withdrawn_purposes": ["cross_context_ads"]}
    states = {d.purpose.key: d for d in get_subject_consent(tenant=tenant, subject_key=key)
              .purposes}
    assert states["cross_context_ads"].chosen is False
    assert states["personalization"].granted is True


def test_limit_withdraws_the_purposes_that_use_sensitive_data(tenant, api, oncommit):
    create_purpose(tenant=tenant, key="health_tips", name="Health tips",
                   description="Uses your health interests.", uses_sensitive_data=True)
    key = seed_subject(tenant, "user-1")
    body = _post(api, oncommit, kind="limit_sensitive", subject="user-1").json()
    assert body["result"]["applied"] == {"withdrawn_purposes": ["health_tips"]}
    states = {d.purpose.key: d for d in get_subject_consent(tenant=tenant, subject_key=key)
              .purposes}
    assert states["health_tips"].chosen is False


def test_rectification_changes_consents_and_deletes_chosen_interactions(tenant, api, oncommit):
    key = seed_subject(tenant, "user-1", events=3)
    chosen = list(Event.objects.for_tenant(tenant).filter(subject_key=key)
                  .values_list("event_id", flat=True)[:2])
    body = _post(api, oncommit, kind="rectification", subject="user-1",
                 details={"consents": {"analytics": False}, "level": "session",
                          "delete_events": chosen}).json()
    assert body["status"] == "completed"
    assert body["result"]["rectification"]["events_deleted"] == 2
    # Level "session" stores nothing: the interaction left over goes too (issue 14).
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 0
    detail = get_subject_consent(tenant=tenant, subject_key=key)
    assert detail.chosen_level == "session"
    assert {d.purpose.key: d.granted for d in detail.purposes}["analytics"] is False


def test_an_invalid_rectification_changes_nothing(tenant, api, oncommit):
    key = seed_subject(tenant, "user-1")
    response = _post(api, oncommit, kind="rectification", subject="user-1",
                     details={"consents": {"no_such_purpose": True}})
    assert response.status_code == 400
    assert not PrivacyRequest.all_tenants.exists()
    assert get_subject_consent(tenant=tenant, subject_key=key).view.level == "full"


def test_access_gives_a_single_use_download_link(tenant, api, oncommit, client):
    seed_subject(tenant, "user-1", events=2)
    created = _post(api, oncommit, kind="access", subject="user-1").json()
    body = api.get(f"{URL}/{created['id']}").json()
    assert body["status"] == "completed"
    url = body["download"]["url"]
    assert url.startswith("http://testserver/privacy/")
    path = url.removeprefix("http://testserver")
    with oncommit():
        first = client.post(path)
    assert first.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(first.streaming_content)))
    assert "export.json" in archive.namelist()
    assert client.post(path).status_code == 410
    assert api.get(f"{URL}/{created['id']}").json()["download"]["url"] is None


def test_an_erasure_reports_its_receipt_and_verification(tenant, api, oncommit):
    key = seed_subject(tenant, "user-1", events=4)
    created = _post(api, oncommit, kind="erasure", subject="user-1").json()
    body = api.get(f"{URL}/{created['id']}").json()
    assert body["status"] == "completed"
    receipt = body["result"]["receipt"]
    counts = {c["handler"]: c["count"] for c in receipt["categories"]}
    assert counts["events.event"] == 4
    assert body["erasure_verification"]["hits"] == 0
    assert key not in str(body)
    assert pseudonymize(tenant, "user-1") == key
