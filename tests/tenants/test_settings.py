"""Tenant settings: one declaration each (apps.core.tenant_settings), the same validation in
the API (GET|PATCH /api/v1/settings) and in the admin's form, and audited changes."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.test import Client

from apps.audit.models import AuditEvent
from apps.core.tenant_settings import Kind, declare, get_setting, tenant_settings
from apps.modeling.config import modeling_settings
from apps.tenants.models import Membership, Scope, Tenant
from tests.factories.tenants import MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/settings"


@pytest.fixture
def settings_api(tenant, make_client):
    return make_client(tenant, [Scope.SETTINGS_MANAGE])


def test_every_setting_read_by_an_app_is_declared_once_with_help_and_a_valid_default():
    declared = {s.name: s for s in tenant_settings()}
    for name in ["dp_epsilon", "model_factors", "model_bm25_k", "consent_expiry_months",
                 "event_history_cap", "unknown_items", "retention_run_time",
                 "privacy_holidays", "privacy_portal_identifier"]:
        assert name in declared
    for setting in declared.values():
        assert setting.help
        assert setting.validate(setting.default) == setting.default, setting.name
    with pytest.raises(ValueError, match="declared twice"):
        declare("dp_epsilon", Kind.INTEGER, default=1, help="again", group="x")


def test_get_lists_effective_values_and_declarations(settings_api, tenant):
    tenant.settings = {"dp_epsilon": 2.0, "stale_key": 1}
    tenant.save()
    body = settings_api.get(URL).json()
    assert body["settings"]["dp_epsilon"] == 2.0
    assert body["settings"]["model_weighting"] == "linear"
    assert body["customized"] == ["dp_epsilon"]
    declaration = body["declarations"]["dp_epsilon"]
    assert declaration["type"] == "number"
    assert declaration["minimum"] == 1e-3
    assert body["declarations"]["unknown_items"]["choices"] == ["create", "reject"]


@pytest.mark.parametrize(("body", "field"), [
    ({"dp_epsilon": "lots"}, "dp_epsilon"),
    ({"dp_epsilon": True}, "dp_epsilon"),
    ({"dp_epsilon": 1000}, "dp_epsilon"),
    ({"model_factors": 2.5}, "model_factors"),
    ({"unknown_items": "maybe"}, "unknown_items"),
    ({"model_algorithms": ["als", "nope"]}, "model_algorithms"),
    ({"retention_run_time": "25:00"}, "retention_run_time"),
    ({"privacy_holidays": ["2026-02-30"]}, "privacy_holidays"),
    ({"no_such_setting": 1}, "no_such_setting"),
])
def test_bad_values_and_unknown_keys_are_400_naming_the_field(settings_api, tenant, body,
                                                              field):
    before = dict(Tenant.objects.get(pk=tenant.pk).settings)
    response = settings_api.patch(URL, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_settings"
    assert list(error["details"]) == [field]
    assert Tenant.objects.get(pk=tenant.pk).settings == before


def test_one_bad_value_rejects_the_whole_patch(settings_api, tenant):
    response = settings_api.patch(URL, {"dp_epsilon": 2.0, "model_factors": "x"},
                                  format="json")
    assert response.status_code == 400
    assert "dp_epsilon" not in Tenant.objects.get(pk=tenant.pk).settings


def test_a_body_that_is_not_an_object_is_400(settings_api):
    response = settings_api.patch(URL, [1, 2], format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["error"]["details"]


def test_patch_stores_valid_values_resets_with_null_and_readers_follow(settings_api, tenant):
    response = settings_api.patch(
        URL, {"dp_epsilon": 2.5, "model_factors": 32.0, "retention_run_time": "4:05",
              "privacy_holidays": ["2026-12-26", "2026-12-25"]}, format="json")
    assert response.status_code == 200, response.json()
    stored = Tenant.objects.get(pk=tenant.pk).settings
    assert stored["dp_epsilon"] == 2.5
    assert stored["model_factors"] == 32
    assert isinstance(stored["model_factors"], int)
    assert stored["retention_run_time"] == "04:05"
    assert stored["privacy_holidays"] == ["2026-12-25", "2026-12-26"]
    tenant.refresh_from_db()
    cfg = modeling_settings(tenant)
    assert cfg.dp_epsilon == 2.5
    assert cfg.algorithm["model_factors"] == 32
    assert settings_api.patch(URL, {"dp_epsilon": None}, format="json").status_code == 200
    assert "dp_epsilon" not in Tenant.objects.get(pk=tenant.pk).settings
    assert response.json()["settings"]["model_factors"] == 32


def test_a_bad_stored_value_reads_as_the_default(tenant):
    tenant.settings = {"dp_epsilon": "lots", "model_factors": -3}
    cfg = modeling_settings(tenant)
    assert cfg.dp_epsilon == get_setting("dp_epsilon").default
    assert cfg.algorithm["model_factors"] == get_setting("model_factors").default


def test_the_patch_is_audited_in_the_tenants_chain(settings_api, tenant):
    settings_api.patch(URL, {"dp_epsilon": 3.0}, format="json")
    entry = LogEntry.objects.filter(content_type__model="tenant",
                                    object_pk=str(tenant.pk)).latest("pk")
    assert "dp_epsilon" in str(entry.changes)
    anchor = AuditEvent.objects.for_tenant(tenant).filter(action="config.changed").latest(
        "sequence")
    assert anchor.target_id == str(entry.pk)


def test_the_settings_scope_is_required(tenant, make_client):
    client = make_client(tenant, [Scope.EVENTS_WRITE])
    assert client.get(URL).status_code == 403
    assert client.patch(URL, {"dp_epsilon": 2.0}, format="json").status_code == 403


# --- The admin's form ------------------------------------------------------------------------


def _admin(tenant, role=Membership.Role.OWNER) -> Client:
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return client


def _form_data(tenant, **settings) -> dict:
    data = {"name": tenant.name, "default_regime": tenant.default_regime,
            "contact_email": tenant.contact_email}
    data.update(settings)
    return data


def test_the_admin_form_has_typed_fields_with_help_and_validates_like_the_api(tenant):
    client = _admin(tenant)
    url = f"/admin/tenants/tenant/{tenant.pk}/change/"
    page = client.get(url).content.decode()
    assert 'name="dp_epsilon"' in page
    assert 'type="number"' in page
    assert "ε spent per differentially private popular-items release." in page
    assert '<option value="reject">' in page  # unknown_items' choices
    response = client.post(url, _form_data(tenant, dp_epsilon="lots",
                                           retention_run_time="25:99"))
    assert response.status_code == 200  # the form again, with the errors
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"dp_epsilon", "retention_run_time"}
    assert "dp_epsilon" not in Tenant.objects.get(pk=tenant.pk).settings
    response = client.post(url, _form_data(tenant, dp_epsilon="1000"))
    assert "dp_epsilon" in response.context["adminform"].form.errors


def test_the_admin_form_saves_changes_keeps_unknown_keys_and_resets_empty_fields(tenant):
    tenant.settings = {"legacy_key": "kept", "event_history_cap": 50}
    tenant.save()
    client = _admin(tenant)
    url = f"/admin/tenants/tenant/{tenant.pk}/change/"
    response = client.post(url, _form_data(tenant, dp_epsilon="2.5", unknown_items="reject",
                                           privacy_holidays="2026-12-25, 2026-12-24",
                                           model_algorithms=["als"]))
    assert response.status_code == 302, response.context["adminform"].form.errors
    stored = Tenant.objects.get(pk=tenant.pk).settings
    assert stored == {"legacy_key": "kept", "dp_epsilon": 2.5, "unknown_items": "reject",
                      "privacy_holidays": ["2026-12-24", "2026-12-25"],
                      "model_algorithms": ["als"]}
    entry = LogEntry.objects.filter(content_type__model="tenant").latest("pk")
    assert "dp_epsilon" in str(entry.changes)


def test_an_analyst_cannot_change_settings(tenant):
    client = _admin(tenant, Membership.Role.ANALYST)
    url = f"/admin/tenants/tenant/{tenant.pk}/change/"
    client.post(url, _form_data(tenant, dp_epsilon="2.5"))
    assert "dp_epsilon" not in Tenant.objects.get(pk=tenant.pk).settings
