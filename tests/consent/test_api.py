"""GET/PUT /api/v1/subjects/{subject}/consent."""

from __future__ import annotations

import logging

import pytest
from django.apps import apps
from django.db import models

from apps.consent.models import ConsentRecord, ConsentState, SubjectState
from apps.consent.selectors import can_use
from apps.tenants.models import Scope
from apps.tenants.services import pseudonymize

RAW_ID = "customer-7f3a9c-raw@example.com"
URL = f"/api/v1/subjects/{RAW_ID}/consent"


def _put(api, body, **headers):
    return api.put(URL, body, format="json", headers=headers)


def _written(tenant) -> tuple[int, int, int]:
    return (ConsentRecord.objects.for_tenant(tenant).count(),
            ConsentState.objects.for_tenant(tenant).count(),
            SubjectState.objects.for_tenant(tenant).count())


def test_get_for_a_new_subject_lists_every_purpose_with_its_default(api):
    response = api.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"purposes", "level", "flags", "history"}
    assert set(body["purposes"]) == {"personalization", "analytics", "cross_context_ads"}
    assert body["purposes"]["personalization"] | {} == {
        **body["purposes"]["personalization"], "granted": False, "default": True,
        "notice_version": None, "source": "default", "at": None}
    assert body["purposes"]["analytics"]["granted"] is True
    assert body["level"] == "session"
    assert body["flags"] == {"restricted": False, "objected": False, "do_not_ask_until": None,
                             "gpc": False}
    assert body["history"] == []


def test_put_records_the_decisions_and_answers_in_the_get_shape(api, tenant):
    response = _put(api, {"purposes": {"personalization": True, "cross_context_ads": False},
                          "notice_version": "v1", "level": "full", "source": "banner"})
    assert response.status_code == 200, response.content
    body = response.json()
    personalization = body["purposes"]["personalization"]
    assert (personalization["granted"], personalization["notice_version"],
            personalization["source"], personalization["method"]) == (True, "v1", "api", "banner")
    assert personalization["at"]
    assert personalization["expires_at"]
    assert body["level"] == "full"
    assert [(h["kind"], h["purpose"], h["granted"]) for h in body["history"]] == [
        ("purpose", "personalization", True), ("purpose", "cross_context_ads", False),
        ("level", None, None)]
    assert api.get(URL).json() == body
    assert can_use(tenant=tenant, subject_key=pseudonymize(tenant, RAW_ID),
                   purpose="personalization")


def test_notice_version_level_and_source_are_optional(api):
    response = _put(api, {"purposes": {"personalization": True}})
    assert response.status_code == 200
    assert response.json()["purposes"]["personalization"]["notice_version"] == "v1"


@pytest.mark.parametrize(("body", "code"), [
    ({"purposes": {"nope": True}}, "unknown_purpose"),
    ({"purposes": {"personalization": True}, "notice_version": "v404"},
     "unknown_notice_version"),
    ({"purposes": {"personalization": True}, "level": "maximum"}, "invalid_level"),
    ({"purposes": {"personalization": True}, "level": 3}, "invalid_level"),
    ({"purposes": {"personalization": "true"}}, "malformed_body"),
    ({"purposes": ["personalization"]}, "malformed_body"),
    ({"purpose": {"personalization": True}}, "malformed_body"),
    ({}, "malformed_body"),
    ([1, 2], "malformed_body"),
    ({"purposes": {"personalization": True}, "source": "x" * 65}, "malformed_body"),
    ({"purposes": {"personalization": True}, "flags": {"restricted": "yes"}}, "malformed_body"),
    ({"purposes": {"personalization": False}, "level": "full"}, "level_requires_consent"),
])
def test_a_bad_put_is_a_400_with_a_specific_code_and_writes_nothing(api, tenant, body, code):
    response = _put(api, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert _written(tenant) == (0, 0, 0)


def test_a_body_that_is_not_json_is_malformed(api, tenant):
    response = api.put(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"
    assert _written(tenant) == (0, 0, 0)


def test_an_unusable_subject_id_is_refused(api):
    response = api.get(f"/api/v1/subjects/{'x' * 600}/consent")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_subject"


def test_flags_can_be_set_through_the_api(api):
    _put(api, {"purposes": {"personalization": True}})
    body = _put(api, {"flags": {"objected": True}}).json()
    assert body["flags"]["objected"] is True
    assert body["flags"]["do_not_ask_until"]
    assert body["purposes"]["personalization"]["granted"] is False
    response = _put(api, {"purposes": {"personalization": True}})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "objection_in_effect"


# --- Global Privacy Control ------------------------------------------------------------------


def test_the_gpc_header_records_an_opt_out_once_per_change(api, tenant):
    _put(api, {"purposes": {"personalization": True, "cross_context_ads": True}})
    for _ in range(3):
        body = api.get(URL, headers={"Sec-GPC": "1"}).json()
    assert body["purposes"]["cross_context_ads"]["granted"] is False
    assert body["purposes"]["cross_context_ads"]["source"] == "gpc"
    assert body["flags"]["gpc"] is True
    gpc_rows = ConsentRecord.objects.for_tenant(tenant).filter(source="gpc")
    assert gpc_rows.count() == 1
    _put(api, {"purposes": {"personalization": True}}, **{"Sec-GPC": "1"})
    assert gpc_rows.count() == 1
    assert body["purposes"]["personalization"]["granted"] is True


def test_a_later_request_without_the_header_does_not_re_enable_sale(api, tenant):
    api.get(URL, headers={"Sec-GPC": "1"})
    written = _written(tenant)
    response = _put(api, {"purposes": {"cross_context_ads": True}})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "gpc_opt_out_in_effect"
    assert _written(tenant) == written
    assert api.get(URL).json()["purposes"]["cross_context_ads"]["granted"] is False


def test_gpc_with_a_grant_in_the_same_put_keeps_the_opt_out(api):
    body = _put(api, {"purposes": {"cross_context_ads": True, "personalization": True}},
                **{"Sec-GPC": "1"}).json()
    assert body["purposes"]["cross_context_ads"]["granted"] is False
    assert body["purposes"]["personalization"]["granted"] is True


def test_a_gpc_value_other_than_1_is_no_signal(api, tenant):
    api.get(URL, headers={"Sec-GPC": "0"})
    assert _written(tenant) == (0, 0, 0)


# --- Keys, tenants, privacy ----------------------------------------------------------------


def test_a_read_only_key_cannot_record_consent(tenant, make_client):
    reader = make_client(tenant, scopes=[Scope.CONSENT_READ])
    assert reader.get(URL).status_code == 200
    response = _put(reader, {"purposes": {"personalization": True}})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    writer_only = make_client(tenant, scopes=[Scope.CONSENT_WRITE])
    assert writer_only.get(URL).status_code == 403


def test_the_same_subject_id_in_two_tenants_is_two_unrelated_subjects(api, other_api, tenant,
                                                                      other_tenant):
    _put(other_api, {"purposes": {"personalization": True}, "level": "full"})
    body = api.get(URL).json()
    assert body["purposes"]["personalization"]["granted"] is False
    assert body["history"] == []
    assert pseudonymize(tenant, RAW_ID) != pseudonymize(other_tenant, RAW_ID)


def _text_like(field: models.Field) -> bool:
    return isinstance(field, models.CharField | models.TextField | models.BinaryField
                      | models.JSONField)


def test_the_raw_subject_id_appears_in_no_table(api, tenant):
    """Every text, binary and JSON column of every table, after a full run of the API."""
    _put(api, {"purposes": {"personalization": True}, "level": "full", "source": "banner"})
    api.get(URL, headers={"Sec-GPC": "1"})
    _put(api, {"purposes": {"nope": True}})
    _put(api, {"purposes": {"cross_context_ads": True}})  # 409
    _put(api, {"flags": {"restricted": True}})
    api.get(URL)
    needle = RAW_ID.encode()
    checked = 0
    for model in apps.get_models(include_auto_created=True):
        fields = [f.attname for f in model._meta.concrete_fields if _text_like(f)]
        if not fields:
            continue
        for row in model._default_manager.values_list(*fields):
            for value in row:
                checked += 1
                data = value if isinstance(value, bytes | memoryview) else str(value).encode()
                assert needle not in bytes(data), f"raw subject id found in {model._meta.label}"
    assert checked > 50  # the walk did see the consent, audit and auditlog rows


def test_the_raw_subject_id_is_not_logged_on_errors(api, caplog):
    with caplog.at_level(logging.DEBUG):
        _put(api, {"purposes": {"nope": True}})
        _put(api, {"purposes": {"personalization": True}, "level": "full"})
    assert caplog.records
    assert not any(RAW_ID in record.getMessage() for record in caplog.records)
