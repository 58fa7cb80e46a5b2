"""``GET /api/v1/retention-policies`` and ``PUT /api/v1/retention-policies/{category}``."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.retention.models import RetentionPolicy
from apps.retention.services import provision_retention_policies

LIST = "retention-policy-list"
ALL_CATEGORIES = ["events", "inactive_subjects", "consent_ledger", "exports",
                  "closed_privacy_requests", "erasure_tombstones", "model_artifacts",
                  "webhook_deliveries", "audit_entries"]


def _detail(category: str) -> str:
    return reverse("retention-policy-detail", kwargs={"category": category})


def test_every_tenant_is_provisioned_with_the_default_policies(tenant):
    stored = dict(RetentionPolicy.objects.for_tenant(tenant).values_list("category", "days"))
    assert stored == {"events": 365, "inactive_subjects": None, "consent_ledger": 1826,
                      "exports": 7, "closed_privacy_requests": 731,
                      "erasure_tombstones": 1096, "model_artifacts": None,
                      "webhook_deliveries": 30, "audit_entries": 1096}
    provision_retention_policies(tenant)  # idempotent
    assert RetentionPolicy.objects.for_tenant(tenant).count() == len(stored)


def test_list_returns_every_category_with_its_period(api, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        response = api.get(reverse(LIST))

    assert response.status_code == 200
    body = response.json()
    assert [p["category"] for p in body] == ALL_CATEGORIES
    events = body[0]
    assert events["days"] == 365
    assert events["hours"] is None
    assert events["period_seconds"] == 365 * 86400
    assert events["editable"] is True
    assert events["unit"] == "rows"
    subjects = body[1]
    assert subjects["follows"] == "events"
    assert subjects["editable"] is False
    assert subjects["period_seconds"] == 365 * 86400
    assert subjects["unit"] == "subjects"


def test_put_days_sets_the_period_and_is_audited(api, tenant):
    response = api.put(_detail("events"), {"days": 30}, format="json")

    assert response.status_code == 200
    assert response.json()["days"] == 30
    assert response.json()["period_seconds"] == 30 * 86400
    policy = RetentionPolicy.objects.for_tenant(tenant).get(category="events")
    assert (policy.days, policy.hours) == (30, None)
    entry = AuditEvent.objects.for_tenant(tenant).get(action="retention.policy_changed")
    assert entry.actor_type == "api_key"
    assert entry.details == {"category": "events", "from": {"days": 365, "hours": None},
                             "to": {"days": 30, "hours": None}}
    assert LogEntry.objects.get_for_object(policy).exists()  # django-auditlog
    # Inactive subjects follow.
    subjects = api.get(_detail("inactive_subjects")).json()
    assert subjects["period_seconds"] == 30 * 86400


def test_put_hours_replaces_days_and_a_get_returns_what_was_put(api, tenant):
    assert api.put(_detail("consent_ledger"), {"hours": 36}, format="json").status_code == 200

    policy = api.get(_detail("consent_ledger")).json()
    assert (policy["days"], policy["hours"], policy["period_seconds"]) == (None, 36, 36 * 3600)
    assert api.put(_detail("consent_ledger"), {"days": 2}, format="json").json()["hours"] is None


def test_putting_the_current_value_changes_nothing(api, tenant):
    api.put(_detail("events"), {"days": 365}, format="json")
    assert not AuditEvent.objects.for_tenant(tenant).filter(
        action="retention.policy_changed").exists()


def test_policies_can_be_kept_as_code_get_then_put_round_trips(api):
    for policy in api.get(reverse(LIST)).json():
        if not policy["editable"]:
            continue
        period = {"days": policy["days"]} if policy["days"] is not None else {
            "hours": policy["hours"]}
        assert api.put(_detail(policy["category"]), period, format="json").status_code == 200


@pytest.mark.parametrize(("body", "code"), [
    ({}, "missing_period"),
    ({"days": None}, "missing_period"),
    ({"days": 3, "hours": 4}, "ambiguous_period"),
    ({"days": 0}, "invalid_period"),
    ({"days": -5}, "invalid_period"),
    ({"days": 1.5}, "invalid_period"),
    ({"days": "30"}, "invalid_period"),
    ({"days": True}, "invalid_period"),
    ({"days": 36_501}, "invalid_period"),
    ({"hours": 0}, "invalid_period"),
    ({"weeks": 2}, "unknown_field"),
    ({"days": 3, "category": "audit_entries"}, "unknown_field"),
    ([{"days": 3}], "malformed_body"),
    ("30", "malformed_body"),
])
def test_bad_input_is_refused_with_a_specific_code(api, tenant, body, code):
    response = api.put(_detail("events"), body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert RetentionPolicy.objects.for_tenant(tenant).get(category="events").days == 365


def test_invalid_json_is_malformed(api):
    response = api.generic("PUT", _detail("events"), "{days: 3", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"


def test_a_following_category_cannot_be_set(api):
    response = api.put(_detail("inactive_subjects"), {"days": 10}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "period_not_settable"
    assert response.json()["error"]["details"] == {"follows": "events"}


def test_an_unknown_category_is_404(api):
    response = api.put(_detail("cookies"), {"days": 10}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_category"
    assert api.get(_detail("cookies")).status_code == 404


def test_the_routes_need_the_retention_scope(tenant, make_client):
    client = make_client(tenant, scopes=["events:write"])
    assert client.get(reverse(LIST)).status_code == 403
    assert client.put(_detail("events"), {"days": 3}, format="json").status_code == 403


def test_a_tenants_change_is_its_own(api, other_tenant, other_api):
    api.put(_detail("events"), {"days": 30}, format="json")
    assert other_api.get(_detail("events")).json()["days"] == 365
    assert RetentionPolicy.objects.for_tenant(other_tenant).get(category="events").days == 365
