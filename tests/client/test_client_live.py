"""``discreet_client`` against a live server (real HTTP, PostgreSQL, the real worker):
every public route through the client's own methods, as a tenant's developer would call
them."""

from __future__ import annotations

import pytest

from apps.modeling.services import train_model
from apps.privacy.models import PrivacyRequest
from discreet_client import ApiError, DiscreetClient, Event
from platform_site.settings import test as test_settings
from tests.factories.modeling import configure, planted_dataset
from tests.factories.tenants import make_api_key

pytestmark = pytest.mark.integration


@pytest.fixture
def shared_media(settings):
    """The worker's media root: artifacts written here are the ones the worker patches."""
    settings.MEDIA_ROOT = test_settings.MEDIA_ROOT


@pytest.fixture
def client(tenant, live_server, live_worker, shared_media):
    _, raw = make_api_key(tenant)  # every scope
    with DiscreetClient(live_server.url, raw, max_retries=2, backoff=0.05) as client:
        yield client


@pytest.fixture
def trained(tenant):
    configure(tenant, model_algorithms=["als"])
    data = planted_dataset(tenant, seed=5, groups=2, subjects_per_group=6)
    train_model(tenant=tenant)
    return data


def test_keys_catalog_and_events(client, tenant, live_server):
    me = client.whoami()
    assert me["tenant"]["slug"] == tenant.slug
    keys = client.list_api_keys()
    assert [k["prefix"] for k in keys] == [me["api_key"]["prefix"]]
    assert client.get_api_key(keys[0]["id"])["prefix"] == keys[0]["prefix"]

    totals = client.upsert_items([{"item": "book-1", "title": "Dune"},
                                  {"item": "book/2?", "title": "Odd id"}])
    assert (totals["created"], totals["updated"]) == (2, 0)
    client.set_consent("reader-1", purposes={"personalization": True}, level="full")
    summary = client.send_events([Event(subject="reader-1", item="book-1", type="view"),
                                  Event(subject="reader-1", item="book-1", type="teleport")])
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert summary.rejected_by_reason() == {"unknown_type": 1}
    client.deactivate_item("book/2?")  # ids with / and ? travel as one path segment
    with pytest.raises(ApiError) as missing:
        client.deactivate_item("never-seen")
    assert (missing.value.status, missing.value.code) == (404, "not_found")

    other, other_raw = make_api_key(tenant, name="second")
    client.revoke_api_key(other.pk)
    assert client.get_api_key(other.pk)["revoked_at"] is not None
    with DiscreetClient(live_server.url, other_raw, max_retries=0) as revoked, \
            pytest.raises(ApiError) as denied:
        revoked.whoami()
    assert denied.value.status == 401


def test_consent_and_recommendations(client, trained):
    subject = trained.subjects[0]
    consent = client.get_consent(subject)
    assert consent["level"] == "full"
    assert consent["purposes"]["personalization"]["allowed"] is True

    recs = client.recommendations(subject, n=3, explain=True)
    assert recs["personalized"] is True
    assert len(recs["items"]) == 3
    assert all(item["because"] for item in recs["items"])
    group = trained.group_of[subject]

    session = client.session_recommendations([f"g{group}-item0", f"g{group}-item1"], n=2)
    assert len(session["items"]) == 2
    similar = client.similar_items(f"g{group}-item0", n=2, categories=[f"group-{group}"])
    assert all(item["item"].startswith(f"g{group}-") for item in similar["items"])
    bundle = client.model_bundle()
    assert bundle["model_version"] == recs["model_version"]
    assert len(bundle["items"]) == len(bundle["item_factors"])

    # A withdrawal reaches serving before the call returns.
    client.set_consent(subject, purposes={"personalization": False})
    after = client.recommendations(subject)
    assert after["personalized"] is False
    assert after["reason"] == "no_consent"

    client.set_consent(subject, purposes={"personalization": True},
                       flags={"restricted": True})
    assert client.recommendations(subject)["reason"] == "restricted"
    assert client.lift_restriction(subject)["flags"]["restricted"] is False
    assert client.recommendations(subject)["reason"] != "restricted"

    with pytest.raises(ApiError) as bad:
        client.recommendations(subject, n=0)
    assert (bad.value.status, bad.value.code) == (400, "invalid")


def test_privacy_requests_and_retention(client, tenant, trained):
    subject = trained.subjects[1]
    created = client.create_privacy_request("erasure", subject)
    assert created["status"] in {"received", "verified", "in_progress", "completed"}
    done = client.wait_for_privacy_request(created["id"], timeout=90)
    assert done["status"] == "completed"
    assert PrivacyRequest.objects.for_tenant(tenant).filter(pk=created["id"]).exists()
    assert client.recommendations(subject)["personalized"] is False

    with pytest.raises(ApiError) as missing:
        client.get_privacy_request(10**9)
    assert missing.value.status == 404

    policies = {p["category"]: p for p in client.retention_policies()}
    editable = next(name for name, p in policies.items() if p["editable"])
    updated = client.set_retention_policy(editable, days=30)
    assert updated["days"] == 30
    assert client.get_retention_policy(editable)["days"] == 30
    with pytest.raises(ValueError, match="exactly one"):
        client.set_retention_policy(editable)


def test_no_answer_is_an_api_error_with_a_code():
    with DiscreetClient("http://127.0.0.1:9", "dsk_x_y", max_retries=1, backoff=0.01,
                        timeout=2) as client, pytest.raises(ApiError) as error:
        client.whoami()
    assert (error.value.status, error.value.code) == (0, "unreachable")


def test_approval_gate_and_webhooks(client, tenant, settings):
    tenant.settings = {**tenant.settings, "privacy_approval_kinds": ["erasure", "access"]}
    tenant.save(update_fields=["settings"])
    held = client.create_privacy_request("erasure", "held@example.com")
    assert held["status"] == "awaiting_approval"
    again = client.create_privacy_request("erasure", "held@example.com")
    assert again["id"] == held["id"]
    assert again["duplicate_of"] == held["id"]
    with pytest.raises(ApiError) as wrong:
        client.deny_privacy_request(held["id"], reason="")
    assert wrong.value.status == 400
    approved = client.approve_privacy_request(held["id"])
    assert approved["status"] != "awaiting_approval"
    assert client.wait_for_privacy_request(held["id"], timeout=90)["status"] == "completed"
    with pytest.raises(ApiError) as not_held:
        client.approve_privacy_request(held["id"])
    assert (not_held.value.status, not_held.value.code) == (409, "not_awaiting_approval")

    other = client.create_privacy_request("access", "other@example.com")
    denied = client.deny_privacy_request(other["id"], reason="We hold no data on you.")
    assert denied["status"] == "rejected"

    settings.WEBHOOK_ALLOW_LOOPBACK = True
    created = client.create_webhook("http://127.0.0.1:9/hook", ["model.activated"],
                                    description="ops")
    assert created["secret"].startswith("whsec_")
    listed = client.list_webhooks()
    assert [hook["id"] for hook in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert client.get_webhook(created["id"])["events"] == ["model.activated"]
    client.delete_webhook(created["id"])
    assert client.list_webhooks() == []
    with pytest.raises(ApiError) as bad_event:
        client.create_webhook("http://127.0.0.1:9/hook", ["no.such.event"])
    assert bad_event.value.status == 400


def test_settings_and_records_of_processing(client, tenant):
    current = client.get_settings()
    assert "privacy_approval_kinds" in current["declarations"]
    updated = client.update_settings({"dp_epsilon": 0.5, "privacy_approval_kinds": ["erasure"]})
    assert updated["settings"]["dp_epsilon"] == 0.5
    assert set(updated["customized"]) >= {"dp_epsilon", "privacy_approval_kinds"}
    with pytest.raises(ApiError) as bad:
        client.update_settings({"dp_epsilon": "lots", "no_such_setting": 1})
    assert bad.value.status == 400
    assert "dp_epsilon" in str(bad.value.details)
    assert "no_such_setting" in str(bad.value.details)
    assert client.get_settings()["settings"]["dp_epsilon"] == 0.5  # all or nothing
    assert client.update_settings({"dp_epsilon": None})["settings"]["dp_epsilon"] != 0.5

    records = client.records_of_processing()
    assert records
    text = client.records_of_processing(as_csv=True)
    assert isinstance(text, str)
    assert text.splitlines()[0].startswith("section")
