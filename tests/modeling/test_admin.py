"""Admin pages: versions with metrics and chart, runs with progress, the budget ledger."""

from __future__ import annotations

import pytest

from apps.modeling.models import ModelVersion, TrainingRun
from apps.modeling.services import train_model
from tests.factories.modeling import configure, planted_dataset
from tests.factories.tenants import MembershipFactory, UserFactory


@pytest.fixture
def two_versions(tenant):
    configure(tenant, model_activation_tolerance=1.0)
    planted_dataset(tenant, groups=2, items_per_group=6, subjects_per_group=5, per_subject=4)
    run = TrainingRun.objects.create(tenant=tenant)
    train_model(tenant=tenant, run=run)
    train_model(tenant=tenant)
    return tenant


def test_members_see_their_versions_with_the_ndcg_chart(client, two_versions, other_tenant):
    member = MembershipFactory(tenant=two_versions).user
    client.force_login(member)
    response = client.get("/admin/modeling/modelversion/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "ndcg-chart" in body
    assert "NDCG@10 over versions" in body
    assert body.count("<circle") == 2
    assert other_tenant.slug not in body
    version = ModelVersion.objects.for_tenant(two_versions).get(number=1)
    detail = client.get(f"/admin/modeling/modelversion/{version.pk}/change/")
    assert detail.status_code == 200
    assert "ndcg@10" in detail.content.decode()
    second = ModelVersion.objects.for_tenant(two_versions).get(number=2)
    detail = client.get(f"/admin/modeling/modelversion/{second.pk}/change/").content.decode()
    assert "champion / challenger" in detail.lower()
    assert "activated (not_comparable)" in detail  # same data: no unseen hold-out pair


def test_an_admin_can_activate_an_older_version_by_hand(client, two_versions):
    member = MembershipFactory(tenant=two_versions).user
    client.force_login(member)
    old = ModelVersion.objects.for_tenant(two_versions).get(number=1)
    response = client.post("/admin/modeling/modelversion/",
                           {"action": "activate_selected", "_selected_action": [old.pk]})
    assert response.status_code == 302
    old.refresh_from_db()
    assert old.status == ModelVersion.Status.ACTIVE
    assert ModelVersion.objects.for_tenant(two_versions).get(number=2).status == "retired"


def test_a_viewer_cannot_activate(client, two_versions):
    viewer = MembershipFactory(tenant=two_versions, role="viewer").user
    client.force_login(viewer)
    old = ModelVersion.objects.for_tenant(two_versions).get(number=1)
    client.post("/admin/modeling/modelversion/",
                {"action": "activate_selected", "_selected_action": [old.pk]})
    old.refresh_from_db()
    assert old.status != ModelVersion.Status.ACTIVE


def test_runs_and_the_budget_ledger_are_shown(client, two_versions):
    client.force_login(UserFactory(is_superuser=True))
    runs = client.get("/admin/modeling/trainingrun/")
    assert runs.status_code == 200
    run = TrainingRun.objects.for_tenant(two_versions).get()
    detail = client.get(f"/admin/modeling/trainingrun/{run.pk}/change/")
    assert "chosen:" in detail.content.decode()
    ledger = client.get("/admin/modeling/privacybudgetentry/")
    assert ledger.status_code == 200
    # The second training saw the same data: its release is the first one again.
    assert "ε spent 1.000 over 1 releases (1 reused)" in ledger.content.decode()
