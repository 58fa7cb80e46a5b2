"""Retention in the admin: policies (edited and audited), last and next run, what a dry run
would delete now, runs with their checkpoints, receipts; all scoped to the member's tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.retention.models import RetentionPolicy, RetentionRun
from apps.retention.services import enforce_retention_now
from apps.tenants.models import Membership
from tests.factories.retention import events_at
from tests.factories.tenants import MembershipFactory

POLICIES = "/admin/retention/retentionpolicy/"


def _client(tenant, role=Membership.Role.OWNER) -> Client:
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return client


@pytest.fixture
def owner_client(tenant) -> Client:
    return _client(tenant)


def _policy(tenant, category="events") -> RetentionPolicy:
    return RetentionPolicy.objects.for_tenant(tenant).get(category=category)


def test_the_policy_list_shows_periods_what_a_dry_run_would_delete_and_the_runs(
        tenant, other_tenant, owner_client):
    events_at(tenant, "sk-admin", timezone.now() - timedelta(days=400), n=4)
    enforce_retention_now(tenant=tenant)
    events_at(tenant, "sk-admin", timezone.now() - timedelta(days=400), n=3)
    other = _policy(other_tenant)

    body = owner_client.get(POLICIES).content.decode().lower()

    assert "365 days" in body
    assert "follows events" in body
    assert "3 rows" in body           # a dry run now
    assert "succeeded" in body        # the last run
    assert "next run" in body
    assert f"/{other.pk}/change/" not in body


def test_an_owner_edits_a_period_through_the_service_and_it_is_audited(tenant, owner_client):
    policy = _policy(tenant)
    response = owner_client.post(f"{POLICIES}{policy.pk}/change/", {"days": "90", "hours": ""})

    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.days == 90
    entry = AuditEvent.objects.for_tenant(tenant).get(action="retention.policy_changed")
    assert entry.actor_type == "user"
    assert LogEntry.objects.get_for_object(policy).filter(actor__isnull=False).exists()


def test_the_admin_form_refuses_what_the_api_refuses(tenant, owner_client):
    policy = _policy(tenant)
    response = owner_client.post(f"{POLICIES}{policy.pk}/change/", {"days": "3", "hours": "4"})
    assert response.status_code == 200
    assert "not both" in response.content.decode()
    policy.refresh_from_db()
    assert policy.days == 365


def test_a_following_policy_shows_no_period_fields(tenant, owner_client):
    policy = _policy(tenant, "inactive_subjects")
    body = owner_client.get(f"{POLICIES}{policy.pk}/change/").content.decode()
    assert 'name="days"' not in body


def test_a_viewer_cannot_edit_or_run(tenant):
    viewer = _client(tenant, Membership.Role.VIEWER)
    policy = _policy(tenant)
    response = viewer.post(f"{POLICIES}{policy.pk}/change/", {"days": "1", "hours": ""})
    assert response.status_code == 403
    viewer.post(POLICIES, {"action": "run_now", "_selected_action": [policy.pk]})
    assert not RetentionRun.objects.for_tenant(tenant).exists()


def test_dry_run_and_run_now_actions(tenant, owner_client, django_capture_on_commit_callbacks):
    events_at(tenant, "sk-action", timezone.now() - timedelta(days=400), n=2)
    policy = _policy(tenant)

    response = owner_client.post(POLICIES, {"action": "dry_run",
                                            "_selected_action": [policy.pk]}, follow=True)
    assert "events: 2" in response.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(POLICIES, {"action": "run_now", "_selected_action": [policy.pk]})
    run = RetentionRun.objects.for_tenant(tenant).get()
    assert run.trigger == RetentionRun.Trigger.ADMIN
    assert run.status == RetentionRun.Status.SUCCEEDED


def test_runs_and_receipts_pages_show_the_checkpoints(tenant, other_tenant, owner_client):
    events_at(tenant, "sk-pages", timezone.now() - timedelta(days=400), n=2)
    enforce_retention_now(tenant=tenant)
    enforce_retention_now(tenant=other_tenant)
    run = RetentionRun.objects.for_tenant(tenant).get()
    theirs = RetentionRun.objects.for_tenant(other_tenant).get()

    runs = owner_client.get("/admin/retention/retentionrun/").content.decode()
    assert "events: 2" in runs
    assert f"retention run #{theirs.pk}<" not in runs
    detail = owner_client.get(f"/admin/retention/retentionrun/{run.pk}/change/")
    assert detail.status_code == 200
    assert "checkpoints per category" in detail.content.decode().lower()
    receipts = owner_client.get("/admin/retention/retentionreceipt/")
    assert receipts.status_code == 200
    assert "audit_entries" in receipts.content.decode()
    foreign = owner_client.get(f"/admin/retention/retentionrun/{theirs.pk}/change/",
                               follow=True)
    assert f"retention run #{theirs.pk}" not in foreign.content.decode()
