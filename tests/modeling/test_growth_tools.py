"""The growth engineer's tools in the admin (issue 17, item 4): "Train now" with live
progress, the recommendation inspector, and deletion of model versions only when nothing
needs them (retire otherwise)."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.modeling.models import ModelVersion, TrainingRun
from apps.modeling.services import artifacts, retire_version, train_model
from apps.privacy.models import PrivacyRequest
from apps.tenants.models import Membership
from tests.db_search import columns_containing
from tests.factories.modeling import configure, planted_dataset
from tests.factories.tenants import MembershipFactory

pytestmark = pytest.mark.django_db

RAW_ID = "subject-0-1"


def _client(tenant, role=Membership.Role.OWNER) -> Client:
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return client


@pytest.fixture
def planted(tenant):
    configure(tenant, model_algorithms=["als"])
    return planted_dataset(tenant, groups=2, items_per_group=6, subjects_per_group=5,
                           per_subject=4)


# --- Train now and progress ----------------------------------------------------------------


def test_train_now_starts_a_run_whose_page_shows_its_progress(
        tenant, planted, django_capture_on_commit_callbacks):
    client = _client(tenant)
    listing = client.get("/admin/modeling/trainingrun/").content.decode()
    assert 'id="train-now-link"' in listing
    assert client.get("/admin/modeling/trainingrun/train-now/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/modeling/trainingrun/train-now/",
                               {"tenant": tenant.pk})
    run = TrainingRun.objects.for_tenant(tenant).get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/modeling/trainingrun/{run.pk}/change/"
    assert run.reason == TrainingRun.Reason.MANUAL
    # Tests run tasks eagerly (after commit): the run has trained, recording its progress.
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.last_error
    assert run.progress["percent"] == 100.0
    page = client.get(response["Location"]).content.decode()
    assert 'id="training-progress"' in page
    assert "training_progress.js" in page
    progress = client.get(f"/admin/modeling/trainingrun/{run.pk}/progress/").json()
    assert progress["status"] == "succeeded"
    assert progress["finished"] is True
    assert progress["percent"] == 100.0
    assert progress["model_version"] == ModelVersion.objects.for_tenant(tenant).get().number


def test_training_records_progress_that_only_moves_forward(tenant, planted, monkeypatch):
    seen: list[float] = []
    from apps.core import jobs

    real = jobs.record_progress

    def spy(job, **progress):
        if "percent" in progress:
            seen.append(progress["percent"])
        real(job, **progress)

    monkeypatch.setattr("apps.modeling.services.training.record_progress", spy)
    run = TrainingRun.objects.create(tenant=tenant)
    train_model(tenant=tenant, run=run)
    assert len(seen) >= 4
    assert seen == sorted(seen)
    assert 0 < seen[0] <= 10
    assert 90 <= seen[-1] < 100
    assert any(10 < p < 90 for p in seen)  # during the fits


def test_readers_cannot_train_and_progress_is_tenant_scoped(tenant, other_tenant, planted):
    analyst = _client(tenant, Membership.Role.ANALYST)
    assert 'id="train-now-link"' not in analyst.get(
        "/admin/modeling/trainingrun/").content.decode()
    assert analyst.post("/admin/modeling/trainingrun/train-now/",
                        {"tenant": tenant.pk}).status_code == 403
    assert not TrainingRun.objects.for_tenant(tenant).exists()
    run = TrainingRun.objects.create(tenant=tenant, progress={"percent": 42.0})
    assert analyst.get(f"/admin/modeling/trainingrun/{run.pk}/progress/").json()[
        "percent"] == 42.0
    stranger = _client(other_tenant)
    foreign = stranger.get(f"/admin/modeling/trainingrun/{run.pk}/progress/")
    missing = stranger.get("/admin/modeling/trainingrun/999999/progress/")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    # Nor can they start a run for another tenant.
    response = stranger.post("/admin/modeling/trainingrun/train-now/", {"tenant": tenant.pk})
    assert response.status_code == 200  # the form again: not one of their tenants
    assert not TrainingRun.objects.for_tenant(tenant).filter(reason="manual").exclude(
        pk=run.pk).exists()


# --- The inspector ----------------------------------------------------------------------------


def test_the_inspector_shows_consent_level_recommendations_and_version(tenant, planted,
                                                                         log_output):
    version = train_model(tenant=tenant)
    client = _client(tenant, Membership.Role.ANALYST)
    assert client.get("/admin/modeling/modelversion/inspect/").status_code == 200
    response = client.post("/admin/modeling/modelversion/inspect/", {"tenant": tenant.pk,
                                                                     "subject": RAW_ID})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    inspection = response.context["inspection"]
    assert inspection.level == "full"
    assert inspection.recommendation.personalized is True
    assert inspection.recommendation.model_version == version.number
    assert inspection.model_version.pk == version.pk
    assert inspection.items
    assert all(item["because"] for item in inspection.items)
    assert any(p["key"] == "personalization" and p["granted"] for p in inspection.purposes)
    page = response.content.decode()
    assert f"v{version.number}" in page
    assert 'class="inspection-item"' in page
    # The access is audited, naming no raw id; the raw id is nowhere stored or logged.
    entry = AuditEvent.objects.for_tenant(tenant).get(action="modeling.subject_inspected")
    assert RAW_ID not in str(entry.details)
    assert RAW_ID not in entry.target_id
    assert entry.details["model_version"] == version.number
    assert columns_containing(RAW_ID) == []
    assert RAW_ID not in log_output.getvalue()


def test_the_inspector_says_why_a_subject_is_not_personalized(tenant, planted):
    train_model(tenant=tenant)
    response = _client(tenant).post("/admin/modeling/modelversion/inspect/",
                                    {"tenant": tenant.pk, "subject": "never-seen"})
    inspection = response.context["inspection"]
    assert inspection.recommendation.personalized is False
    assert inspection.recommendation.reason in {"no_consent", "unknown_subject"}


def test_another_tenants_member_sees_none_of_the_inspectors_results(tenant, other_tenant,
                                                                     planted):
    train_model(tenant=tenant)
    stranger = _client(other_tenant)
    page = stranger.get("/admin/modeling/modelversion/inspect/").content.decode()
    assert tenant.name not in page
    # Naming our tenant is refused; their own tenant knows nothing of our subject.
    refused = stranger.post("/admin/modeling/modelversion/inspect/",
                            {"tenant": tenant.pk, "subject": RAW_ID})
    assert refused.context["inspection"] is None
    assert "tenant" in refused.context["form"].errors
    own = stranger.post("/admin/modeling/modelversion/inspect/",
                        {"tenant": other_tenant.pk, "subject": RAW_ID})
    inspection = own.context["inspection"]
    assert inspection.items == []
    assert inspection.model_version is None
    assert "g0-item" not in own.content.decode()
    assert "g1-item" not in own.content.decode()
    assert not AuditEvent.objects.for_tenant(tenant).filter(
        action="modeling.subject_inspected").exists()


def test_an_over_long_id_is_a_form_error(tenant, planted):
    response = _client(tenant).post("/admin/modeling/modelversion/inspect/",
                                    {"tenant": tenant.pk, "subject": "x" * 600})
    assert response.status_code == 200
    assert "subject" in response.context["form"].errors


# --- Deleting versions -------------------------------------------------------------------------


def test_the_active_version_cannot_be_deleted_but_can_be_retired(
        tenant, planted, django_capture_on_commit_callbacks):
    version = train_model(tenant=tenant)
    client = _client(tenant)
    url = f"/admin/modeling/modelversion/{version.pk}/delete/"
    response = client.post(url, {"post": "yes"}, follow=True)
    assert "is the active version: it cannot be deleted" in response.content.decode()
    assert ModelVersion.objects.for_tenant(tenant).filter(pk=version.pk).exists()
    actions = client.get("/admin/modeling/modelversion/").context["action_form"]
    assert "delete_selected" not in dict(actions.fields["action"].choices)
    retire_version(tenant=tenant, version=version)
    path = ModelVersion.objects.for_tenant(tenant).get(pk=version.pk).artifact_path
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, {"post": "yes"}).status_code == 302
    assert not ModelVersion.objects.for_tenant(tenant).filter(pk=version.pk).exists()
    assert path not in artifacts.list_files(tenant.pk)
    assert AuditEvent.objects.for_tenant(tenant).filter(
        action="modeling.version_deleted").exists()


def test_a_version_named_by_an_unfinished_erasure_cannot_be_deleted(tenant, planted):
    from tests.factories.privacy import make_request

    version = train_model(tenant=tenant)
    retire_version(tenant=tenant, version=version)
    pr = make_request(tenant, "erasure", verified=False)
    PrivacyRequest.objects.for_tenant(tenant).filter(pk=pr.pk).update(
        status=PrivacyRequest.Status.COMPLETED, model_update_pending=True,
        result={"receipt": {"model_versions": [f"v{version.number}"],
                            "model": {"status": "pending"}}})
    client = _client(tenant)
    response = client.post(f"/admin/modeling/modelversion/{version.pk}/delete/",
                           {"post": "yes"}, follow=True)
    assert "waiting for the model update" in response.content.decode()
    assert ModelVersion.objects.for_tenant(tenant).filter(pk=version.pk).exists()
    PrivacyRequest.objects.for_tenant(tenant).filter(pk=pr.pk).update(
        model_update_pending=False)
    assert client.post(f"/admin/modeling/modelversion/{version.pk}/delete/",
                       {"post": "yes"}).status_code == 302
    assert not ModelVersion.objects.for_tenant(tenant).filter(pk=version.pk).exists()


def test_a_stored_version_cannot_be_deleted_while_an_erasure_runs(tenant, planted):
    from apps.core.exceptions import ApplicationError
    from apps.modeling.services import delete_version
    from tests.factories.privacy import make_request

    version = train_model(tenant=tenant)
    retire_version(tenant=tenant, version=version)
    pr = make_request(tenant, "erasure", verified=False)
    PrivacyRequest.objects.for_tenant(tenant).filter(pk=pr.pk).update(
        status=PrivacyRequest.Status.IN_PROGRESS)
    with pytest.raises(ApplicationError) as refused:
        delete_version(tenant=tenant, version=version)
    assert refused.value.code == "version_in_use"
    assert "erasure is in progress" in refused.value.message
