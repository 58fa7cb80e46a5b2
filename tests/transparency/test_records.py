"""Records of processing (GDPR Art. 30; issue 19 item 3): generated from the subject-data
declarations, purposes, retention policies and the sub-processor registry; served by the
API (scope ``settings:manage``) and the admin, as JSON and CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client

from apps.core.subject_data import subject_data_stores
from apps.retention.selectors import list_retention_policies
from apps.retention.services import set_retention_policy
from apps.tenants.models import Membership, Scope
from apps.transparency.models import SubProcessor
from tests.factories.tenants import MembershipFactory

URL = "/api/v1/records-of-processing"


@pytest.fixture
def sub_processors(tenant):
    return [
        SubProcessor.objects.create(
            tenant=tenant, name="Mailer Ltd", purpose="Sends the portal's emails",
            location="Dublin, Ireland (EU)", safeguards="DPA 2026-01; TLS; EU residency"),
        SubProcessor.objects.create(
            tenant=tenant, name="=cmd|' /C calc'!A0", purpose="Backups",
            location="Oregon, USA", transfer_mechanism=SubProcessor.TransferMechanism.SCC,
            safeguards="SCCs (EU 2021/914) module 3; client-side encryption"),
    ]


def _csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_every_declared_store_is_listed_with_its_retention_period(tenant, make_client):
    set_retention_policy(tenant=tenant, category="events", days=42)
    response = make_client(tenant, [Scope.SETTINGS_MANAGE]).get(URL)

    assert response.status_code == 200
    records = response.json()
    listed = {c["name"]: c for c in records["categories_of_data"]}
    stores = subject_data_stores()
    assert set(listed) == {s.name for s in stores}
    periods = {v.code: v for v in list_retention_policies(tenant=tenant)}
    for store in stores:
        entry = listed[store.name]
        view = periods[store.retention.category]
        assert entry["retention_category"] == store.retention.category
        assert entry["category"] == store.category
        assert entry["retention"]  # the rule in plain words
        if view.category.time_based:
            assert entry["retention_days"] == (view.period.days if view.period else None)
    assert listed["events.event"]["retention_days"] == 42
    assert listed["consent.state"]["retention_days"] == 42  # inactive subjects follow events
    assert listed["privacy.tombstone"]["erasure"].startswith("kept as proof")
    assert {p["category"] for p in records["retention_periods"]} == set(periods)
    assert {p["key"] for p in records["purposes"]} >= {"personalization", "analytics"}
    assert records["controller"]["slug"] == tenant.slug
    assert any("HMAC-SHA256" in m for m in records["security_measures"])
    assert any("hash chain" in m for m in records["security_measures"])


def test_every_sub_processor_is_listed_and_transfers_are_those_outside_the_eea(
        tenant, make_client, sub_processors):
    records = make_client(tenant, [Scope.SETTINGS_MANAGE]).get(URL).json()

    assert [s["name"] for s in records["sub_processors"]] == sorted(
        s.name for s in sub_processors)
    mailer = next(s for s in records["sub_processors"] if s["name"] == "Mailer Ltd")
    assert mailer == {"name": "Mailer Ltd", "purpose": "Sends the portal's emails",
                      "location": "Dublin, Ireland (EU)", "transfer_mechanism": "none",
                      "transfer_mechanism_label": "No transfer outside the EEA",
                      "safeguards": "DPA 2026-01; TLS; EU residency"}
    assert [t["location"] for t in records["transfers"]] == ["Oregon, USA"]
    assert "Standard contractual clauses" in records["transfers"][0]["mechanism"]


@pytest.mark.parametrize("how", ["query", "accept"])
def test_the_records_as_csv(tenant, make_client, sub_processors, how):
    client = make_client(tenant, [Scope.SETTINGS_MANAGE])
    response = (client.get(URL, {"format": "csv"}) if how == "query"
                else client.get(URL, headers={"accept": "text/csv"}))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert set(rows[0]) == {"section", "name", "field", "value"}
    data = {(r["section"], r["name"], r["field"]): r["value"] for r in rows}
    for store in subject_data_stores():
        assert ("categories_of_data", store.name, "retention") in data
    assert data[("sub_processors", "Mailer Ltd", "location")] == "Dublin, Ireland (EU)"
    assert data[("categories_of_data", "events.event", "retention_days")] == "365"
    # A cell a spreadsheet would run as a formula is written as text.
    assert ("sub_processors", "'=cmd|' /C calc'!A0", "location") in data


def test_the_scope_is_settings_manage_and_errors_stay_json(tenant, make_client):
    client = make_client(tenant, [Scope.RETENTION_MANAGE])
    for response in (client.get(URL), client.get(URL, {"format": "csv"}),
                     client.get(URL, headers={"accept": "text/csv"})):
        assert response.status_code == 403
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["error"]["code"] == "missing_scope"

    anonymous = Client().get(URL, {"format": "csv"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"]

    for unknown in ("xml", ""):
        bad = make_client(tenant, [Scope.SETTINGS_MANAGE]).get(URL, {"format": unknown})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "unknown_format"
    unacceptable = make_client(tenant, [Scope.SETTINGS_MANAGE]).get(
        URL, headers={"accept": "application/xml"})
    assert unacceptable.status_code == 406
    assert unacceptable.json()["error"]["code"] == "not_acceptable"


def test_another_tenants_key_gets_its_own_records_only(tenant, other_tenant, make_client,
                                                        sub_processors):
    SubProcessor.objects.create(tenant=other_tenant, name="Other's Analytics BV",
                                purpose="x", location="Amsterdam", safeguards="DPA")
    set_retention_policy(tenant=other_tenant, category="events", days=77)
    client = make_client(other_tenant, [Scope.SETTINGS_MANAGE])

    for response in (client.get(URL), client.get(URL, {"format": "csv"})):
        body = response.content.decode()
        assert "Other's Analytics BV" in body
        assert "Mailer Ltd" not in body
        assert "Oregon" not in body
        assert tenant.slug not in body.replace(other_tenant.slug, "")
    records = client.get(URL).json()
    assert records["controller"]["slug"] == other_tenant.slug
    events = next(c for c in records["categories_of_data"] if c["name"] == "events.event")
    assert events["retention_days"] == 77


def test_the_route_is_in_the_openapi_schema(db):
    schema = Client().get("/api/schema/?format=json").json()
    operation = schema["paths"][URL]["get"]
    assert operation["operationId"] == "records_of_processing_retrieve"
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    ref = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    output = schema["components"]["schemas"][ref]
    assert {"purposes", "categories_of_data", "sub_processors", "transfers",
            "security_measures", "retention_periods"} <= set(output["properties"])
    fmt = next(p for p in operation["parameters"] if p["name"] == "format")
    assert fmt["schema"]["enum"] == ["csv", "json"]
    assert operation["security"]
    assert operation["responses"]["403"]["content"]["application/json"]


# --- The admin ---------------------------------------------------------------------------


def _admin(tenant, role=Membership.Role.VIEWER) -> Client:
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return client


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_member_downloads_the_records_from_the_admin(tenant, other_tenant, sub_processors,
                                                       fmt):
    client = _admin(tenant)
    listing = client.get("/admin/transparency/subprocessor/").content.decode()
    url = f"/admin/transparency/subprocessor/records-of-processing/{tenant.slug}.{fmt}"
    assert url in listing
    assert other_tenant.slug not in listing

    response = client.get(url)
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    body = response.content.decode()
    assert "Mailer Ltd" in body
    if fmt == "json":
        assert {c["name"] for c in json.loads(body)["categories_of_data"]} == {
            s.name for s in subject_data_stores()}
    else:
        assert any(r["section"] == "sub_processors" for r in _csv(response))

    other = f"/admin/transparency/subprocessor/records-of-processing/{other_tenant.slug}.{fmt}"
    assert client.get(other).status_code == 404
    assert client.get(url.replace(f".{fmt}", ".xml")).status_code == 404


def test_the_sub_processor_admin_is_tenant_scoped(tenant, other_tenant, sub_processors):
    SubProcessor.objects.create(tenant=other_tenant, name="Other's Analytics BV",
                                purpose="x", location="Amsterdam", safeguards="DPA")
    client = _admin(tenant, role=Membership.Role.ADMIN)
    listing = client.get("/admin/transparency/subprocessor/").content.decode()
    assert "Mailer Ltd" in listing
    assert "Other&#x27;s Analytics BV" not in listing
    assert "Other's Analytics BV" not in listing

    response = client.post("/admin/transparency/subprocessor/add/", {
        "name": "Search SaaS", "purpose": "Site search", "location": "Paris, France (EU)",
        "transfer_mechanism": "none", "safeguards": "DPA 2026-02"})
    assert response.status_code == 302, response.content.decode()[:2000]
    created = SubProcessor.objects.for_tenant(tenant).get(name="Search SaaS")
    assert created.tenant_id == tenant.pk
