"""Consent in the admin: editable, audited configuration; read-only, searchable proof."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.test import Client

from apps.consent.models import ConsentRecord, PrivacyNotice, Purpose
from apps.consent.services import record_consents
from apps.tenants.models import Membership
from apps.tenants.services import pseudonymize
from tests.factories.consent import PrivacyNoticeFactory, record_for
from tests.factories.tenants import MembershipFactory

RAW_ID = "admin-subject-55"


@pytest.fixture
def owner_client(tenant) -> Client:
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(membership.user)
    return client


def test_the_ledger_shows_notice_time_and_source_and_finds_a_subject_by_raw_id(
        tenant, owner_client):
    key = pseudonymize(tenant, RAW_ID)
    record_consents(tenant=tenant, subject_key=key, decisions={"personalization": True},
                    method="footer-banner")
    record_for(tenant, "f" * 64, personalization=False)
    body = owner_client.get("/admin/consent/consentrecord/", {"q": RAW_ID}).content.decode()
    assert "footer-banner" in body
    assert key[:12] in body
    assert ("f" * 12) not in body
    assert RAW_ID not in ConsentRecord.objects.for_tenant(tenant).values_list(
        "subject_key", flat=True)


def test_the_ledger_page_counts_grants_and_withdrawals_per_purpose(tenant, owner_client):
    for n in range(3):
        record_for(tenant, f"{n:064d}", personalization=True)
    record_for(tenant, f"{0:064d}", personalization=False)
    response = owner_client.get("/admin/consent/consentrecord/")
    counts = {(row["purpose"], row["granted"], row["withdrawn"])
              for row in response.context["decision_counts"]}
    assert counts == {("personalization", 3, 1)}
    assert "consent-decision-counts" in response.content.decode()


def test_the_ledger_and_states_are_read_only(tenant, owner_client):
    row = record_for(tenant, "a" * 64, personalization=True)[0]
    assert owner_client.get("/admin/consent/consentrecord/add/").status_code == 403
    response = owner_client.post(f"/admin/consent/consentrecord/{row.pk}/change/",
                                 {"granted": ""})
    assert response.status_code == 403
    assert owner_client.post(f"/admin/consent/consentrecord/{row.pk}/delete/",
                             {"post": "yes"}).status_code == 403
    assert owner_client.get("/admin/consent/consentstate/add/").status_code == 403
    assert owner_client.get("/admin/consent/subjectstate/add/").status_code == 403


def test_another_tenants_ledger_and_purposes_are_invisible(tenant, other_tenant, owner_client):
    record_consents(tenant=other_tenant, subject_key="b" * 64,
                    decisions={"personalization": True}, method="their-banner")
    Purpose.objects.for_tenant(other_tenant).filter(key="analytics").update(
        name="Their secret analytics")
    assert "their-banner" not in owner_client.get(
        "/admin/consent/consentrecord/").content.decode()
    assert "Their secret analytics" not in owner_client.get(
        "/admin/consent/purpose/").content.decode()
    form = owner_client.get("/admin/consent/privacynotice/add/").content.decode()
    theirs = Purpose.objects.for_tenant(other_tenant).get(key="analytics")
    assert f'value="{theirs.pk}"' not in form


def test_a_purpose_edit_is_captured_by_auditlog(tenant, owner_client):
    purpose = Purpose.objects.for_tenant(tenant).get(key="analytics")
    response = owner_client.post(f"/admin/consent/purpose/{purpose.pk}/change/", {
        "name": "Usage statistics", "description": purpose.description,
        "legal_basis": purpose.legal_basis, "aggregate_only": "on", "default_granted": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    purpose.refresh_from_db()
    assert purpose.name == "Usage statistics"
    assert LogEntry.objects.get_for_object(purpose).filter(
        action=LogEntry.Action.UPDATE).exists()


def test_a_purpose_key_must_be_unique_in_the_tenant(tenant, owner_client):
    response = owner_client.post("/admin/consent/purpose/add/", {
        "key": "analytics", "name": "Again", "description": "dup",
        "legal_basis": "consent"})
    assert response.status_code == 200
    assert "Already used in this tenant." in response.content.decode()
    assert Purpose.objects.for_tenant(tenant).filter(key="analytics").count() == 1


def test_a_consent_purpose_cannot_be_made_default_on_in_the_admin(tenant, owner_client):
    response = owner_client.post("/admin/consent/purpose/add/", {
        "key": "newsletter", "name": "Newsletter", "description": "Mails",
        "legal_basis": "consent", "default_granted": "on"})
    assert response.status_code == 200
    assert not Purpose.objects.for_tenant(tenant).filter(key="newsletter").exists()


def test_a_notice_is_added_with_its_tenants_purposes_and_audited(tenant, owner_client):
    purpose = Purpose.objects.for_tenant(tenant).get(key="personalization")
    response = owner_client.post("/admin/consent/privacynotice/add/", {
        "version": "2026-02", "effective_at_0": "2026-01-01", "effective_at_1": "00:00:00",
        "purposes": [purpose.pk], "text": "New text."})
    assert response.status_code == 302, response.content.decode()[:3000]
    notice = PrivacyNotice.objects.for_tenant(tenant).get(version="2026-02")
    assert list(notice.purposes.all()) == [purpose]
    assert LogEntry.objects.get_for_object(notice).exists()


def test_a_notice_in_effect_cannot_be_edited(tenant, owner_client):
    notice = PrivacyNotice.objects.for_tenant(tenant).get()
    owner_client.post(f"/admin/consent/privacynotice/{notice.pk}/change/",
                      {"text": "Rewritten history"})
    notice.refresh_from_db()
    assert notice.text != "Rewritten history"


def test_the_renewal_action_marks_earlier_consents(tenant, owner_client):
    record_for(tenant, "c" * 64, personalization=True)
    notice = PrivacyNoticeFactory(tenant=tenant, version="v2",
                                  purposes=Purpose.objects.for_tenant(tenant).filter(
                                      key="personalization"))
    response = owner_client.post("/admin/consent/privacynotice/", {
        "action": "require_renewal", "_selected_action": [notice.pk]}, follow=True)
    assert response.status_code == 200
    assert Purpose.objects.for_tenant(tenant).get(
        key="personalization").renewal_required_from == notice
    assert Purpose.objects.for_tenant(tenant).get(key="analytics").renewal_required_from is None
