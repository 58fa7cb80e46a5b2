"""The OpenAPI schema says what the API answers (README "API conformance check"); the full
check is ``tools/schemathesis_run.sh`` against a live server, in CI."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.core.schema import ERROR_RESPONSES

METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture
def schema(db) -> dict:
    return APIClient().get("/api/schema/?format=json").json()


def test_every_operation_declares_the_shared_error_responses(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]
    operations = [(path, method, op) for path, item in schema["paths"].items()
                  for method, op in item.items() if method in METHODS]
    assert len(operations) > 15
    for path, method, operation in operations:
        for status in ERROR_RESPONSES:
            if status == "415" and "requestBody" not in operation:
                continue
            response = operation["responses"].get(status)
            assert response is not None, f"{method.upper()} {path} lacks {status}"
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}, f"{method.upper()} {path} {status}"


def test_api_keys_are_documented_as_the_cursor_page_they_are(schema, api):
    operation = schema["paths"]["/api/v1/api-keys"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"next", "previous", "results"}
    body = api.get("/api/v1/api-keys").json()
    assert set(body) == {"next", "previous", "results"}
    assert api.get("/api/v1/api-keys?page_size=0").status_code == 400
    assert api.get("/api/v1/api-keys?page_size=x").status_code == 400


def test_consent_history_level_is_nullable(schema):
    entry = schema["components"]["schemas"]["ConsentHistoryEntry"]["properties"]
    assert entry["level"]["nullable"] is True


@pytest.mark.parametrize("subject", [0, 1.5, True, ["a"], {"a": 1}])
def test_a_subject_that_is_not_a_string_is_400(api, subject):
    response = api.post("/api/v1/privacy-requests",
                        {"kind": "access", "subject": subject}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["subject"] == ["Not a valid string."]


def test_a_numeric_item_is_400_not_the_item_0(api):
    response = api.put("/api/v1/items", {"items": [{"item": 0}]}, format="json")

    assert response.status_code == 400
    assert "item" in response.json()["error"]["details"]["items"]["0"]


def test_a_blank_required_text_is_400_and_the_schema_says_min_length(schema, api):
    item = schema["components"]["schemas"]["ItemInput"]["properties"]["item"]
    assert item["minLength"] == 1
    response = api.put("/api/v1/items", {"items": [{"item": ""}]}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("details", [
    {"delete_events": ["e\x00"]},
    {"consents": {"p\x00": True}},
    {"level": "full\x00"},
])
def test_a_rectification_holding_a_nul_is_400_not_a_server_error(api, details):
    response = api.post("/api/v1/privacy-requests",
                        {"kind": "rectification", "subject": "s1", "details": details},
                        format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_details"
