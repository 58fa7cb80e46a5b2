"""The model side of an erasure receipt (issue 14, item 6): "model update pending" until a
model trained without the subject is in service, then final with the version, the checked
fact that its training snapshot lacked the subject's key, and its file's checksum."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.audit.models import AuditEvent
from apps.core.jobs import DurableJob
from apps.events.models import Event
from apps.modeling.models import ModelVersion, TrainingRun
from apps.modeling.services import (
    artifacts_holding_subject,
    request_training,
    stored_model_evidence,
    train_model,
)
from apps.privacy.models import ErasureTombstone, PrivacyRequest
from apps.privacy.services import finalise_model_receipts, reconcile_model_receipts
from apps.privacy.services.receipts import _Context, _judge
from apps.privacy.subject_data import _export_requests
from tests.factories.events import grant_consent
from tests.factories.modeling import add_events, configure, planted_dataset
from tests.factories.privacy import make_request, seed_subject

# Erasures here commit for real: a patched artifact's old file goes when its step commits.
pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/privacy-requests"
ALICE = "alice@example.com"


def _model_with(tenant, subject: str = ALICE) -> tuple[str, ModelVersion]:
    """A tenant whose active model (v1) learned from ``subject``."""
    configure(tenant, model_algorithms=["als"])
    planted_dataset(tenant, seed=3, groups=2, subjects_per_group=6)
    key = seed_subject(tenant, subject, events=4)
    add_events(tenant, subject, ["g0-item1", "g0-item2", "g0-item3"], subject_key=key)
    version = train_model(tenant=tenant)
    assert artifacts_holding_subject(tenant, key)
    return key, version


def _erase(api, subject: str = ALICE) -> dict:
    created = api.post(URL, {"kind": "erasure", "subject": subject}, format="json").json()
    body = api.get(f"{URL}/{created['id']}").json()
    assert body["status"] == "completed", body
    return body


def _model(api, body: dict) -> dict:
    return api.get(f"{URL}/{body['id']}").json()["result"]["receipt"]["model"]


def _request(tenant, body: dict) -> PrivacyRequest:
    return PrivacyRequest.objects.for_tenant(tenant).get(pk=body["id"])


def _file_sha256(version: ModelVersion) -> str:
    with default_storage.open(version.artifact_path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _file_keys(version: ModelVersion) -> np.ndarray:
    with default_storage.open(version.artifact_path, "rb") as handle, np.load(
            io.BytesIO(handle.read()), allow_pickle=False) as npz:
        return npz["user_keys"]


def _finals(tenant) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_tenant(tenant)
                .filter(action="privacy.erasure_receipt_final"))


def _retrain(tenant) -> ModelVersion:
    run = request_training(tenant=tenant, reason=TrainingRun.Reason.ERASURE)  # eager task
    run = TrainingRun.objects.for_tenant(tenant).get(pk=run.pk)
    assert run.status == DurableJob.Status.SUCCEEDED, run.last_error
    return ModelVersion.objects.for_tenant(tenant).get(pk=run.model_version_id)


def test_the_receipt_says_model_update_pending_until_the_retrain_is_in_service(
        tenant, api):
    key, v1 = _model_with(tenant)
    body = _erase(api)
    model = body["result"]["receipt"]["model"]
    assert model["status"] == "pending"
    assert model["label"] == "model update pending"
    assert model["reason"] == "not_shown_retrained"
    assert model["model_version"]["label"] == "v1"
    assert model["text"].startswith("Model update pending")
    assert "v1" in model["text"]
    assert "retrain without you was requested" in model["text"]
    assert _request(tenant, body).model_update_pending
    assert _finals(tenant) == []
    # v1 no longer holds her key (patched at once), but its training data did: not final.
    v1.refresh_from_db()
    assert key.encode() not in _file_keys(v1)
    assert v1.revision > 0
    assert finalise_model_receipts(tenant=tenant) == {"final": 0, "pending": 1}

    v2 = _retrain(tenant)  # activation -> listener -> the finalising task (eager)

    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.ACTIVE
    model = _model(api, body)
    assert model["status"] == "final"
    assert model["outcome"] == "retrained"
    assert model["model_version"]["id"] == v2.pk
    assert model["model_version"]["label"] == "v2"
    assert model["snapshot_contained_subject"] is False
    assert model["artifact_sha256"] == _file_sha256(v2) == v2.artifact_sha256
    assert key.encode() not in _file_keys(v2)
    (check,) = model["verification"]["versions"]
    assert check["method"] == "unchanged_since_training"
    assert check["subject_key_in_artifact"] is False
    assert model["final_at"]
    assert model["text"].startswith("Final: the recommendation model in service, v2")
    assert v2.artifact_sha256 in model["text"]
    assert not _request(tenant, body).model_update_pending
    (entry,) = _finals(tenant)
    assert entry.details["model_version"] == 2
    assert entry.details["artifact_sha256"] == v2.artifact_sha256
    assert key not in str(entry.details)
    assert ALICE not in str(entry.details)
    assert key not in str(api.get(f"{URL}/{body['id']}").json())
    # Idempotent: checking again writes nothing, audits nothing.
    assert finalise_model_receipts(tenant=tenant) == {"final": 0, "pending": 0}
    assert len(_finals(tenant)) == 1


def test_the_receipt_is_never_final_while_the_model_in_service_was_trained_on_the_key(
        tenant, api):
    key, _ = _model_with(tenant)
    body = _erase(api)
    # The key comes back into the training data (here: consent and events again), and
    # the retrain that replaces v1 learns from it.
    grant_consent(tenant, ALICE)
    add_events(tenant, ALICE, ["g1-item1", "g1-item2", "g1-item3"], subject_key=key)
    v2 = _retrain(tenant)
    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.ACTIVE
    assert key.encode() in _file_keys(v2)

    model = _model(api, body)
    assert model["status"] == "pending"
    assert model["reason"] == "model_holds_subject"
    assert model["model_version"]["label"] == "v2"
    assert "included you" in model["text"]
    assert _request(tenant, body).model_update_pending
    assert reconcile_model_receipts() == {"final": 0, "pending": 1}
    assert _model(api, body)["status"] == "pending"
    assert _finals(tenant) == []


def test_a_version_patched_after_training_proves_nothing_unless_no_erasure_could_touch_it(
        tenant):
    """The proof from a rewritten file: the key absent from it shows the snapshot lacked
    the key only when no erasure of the key may have patched it out since."""
    key, _ = _model_with(tenant)
    with_key = make_request(tenant, "erasure", ALICE)
    with_key.refresh_from_db()
    (v1,) = [e for e in stored_model_evidence(tenant) if e.is_active]
    assert v1.revision > 0
    assert not v1.in_file(key)
    receipt = with_key.result["receipt"]
    ctx = _Context(with_key, receipt, with_key.completed_at)
    assert _judge(v1, ctx) == (False, "not_shown_retrained")  # patched by this erasure
    configure(tenant, model_algorithms=["als"], model_activation_tolerance=1.0)  # new ones serve
    v2 = train_model(tenant=tenant)
    bob = seed_subject(tenant, "bob@example.com", events=2)
    add_events(tenant, "bob@example.com", ["g0-item1", "g0-item4", "g0-item5"],
               subject_key=bob)
    v3 = train_model(tenant=tenant)  # holds bob; bob's erasure will patch it (revision 1)
    assert v2.pk != v3.pk
    make_request(tenant, "erasure", "bob@example.com")
    (active,) = [e for e in stored_model_evidence(tenant) if e.is_active]
    assert active.revision > 0
    assert active.number == 3
    assert _judge(active, ctx) == (True, "registered_after_erasure")
    # Another erasure of the same key still open: it may patch the key out of v3 later.
    other = make_request(tenant, "erasure", ALICE, verified=False)
    ErasureTombstone.objects.create(tenant=tenant, subject_key=key, privacy_request=other,
                                    erased_at=other.received_at)
    ctx = _Context(with_key, receipt, with_key.completed_at)
    assert _judge(active, ctx) == (False, "not_shown_retrained")


def test_the_checksum_is_checked_against_the_file_and_a_lost_listener_is_backed_up(
        tenant, api, mocker):
    key, _ = _model_with(tenant)
    body = _erase(api)
    lost = mocker.patch("apps.privacy.tasks.finalise_model_receipts_task.delay")
    v2 = _retrain(tenant)
    lost.assert_called_once_with(tenant.pk)  # the message a crash would lose
    assert _model(api, body)["status"] == "pending"
    v2.refresh_from_db()
    original = default_storage.open(v2.artifact_path, "rb").read()
    default_storage.delete(v2.artifact_path)
    default_storage.save(v2.artifact_path, ContentFile(original + b"tampered"))
    assert reconcile_model_receipts() == {"final": 0, "pending": 1}
    model = _model(api, body)
    assert model["reason"] == "artifact_checksum_mismatch"
    assert "could not be checked" in model["text"]
    default_storage.delete(v2.artifact_path)
    default_storage.save(v2.artifact_path, ContentFile(original))
    from apps.privacy.services import run_housekeeping

    done = run_housekeeping()  # hourly: the backstop
    assert done["receipts_final"] == 1
    model = _model(api, body)
    assert model["status"] == "final"
    assert model["artifact_sha256"] == hashlib.sha256(original).hexdigest()


def test_a_failed_retrain_keeps_the_receipt_pending_and_says_so(tenant, api):
    _model_with(tenant)
    body = _erase(api)
    Event.objects.for_tenant(tenant).delete()  # nothing left to train on: the run fails
    run = request_training(tenant=tenant, reason=TrainingRun.Reason.ERASURE)
    assert TrainingRun.objects.for_tenant(tenant).get(pk=run.pk).status == "failed"
    assert reconcile_model_receipts() == {"final": 0, "pending": 1}
    model = _model(api, body)
    assert model["status"] == "pending"
    assert model["retrain"]["status"] == "failed"
    assert "last retrain since your erasure failed" in model["text"]


def test_a_subject_the_model_never_learned_from_gets_a_final_receipt_at_once(tenant, api):
    configure(tenant, model_algorithms=["als"])
    planted_dataset(tenant, seed=3, groups=2, subjects_per_group=6)
    v1 = train_model(tenant=tenant)
    key = seed_subject(tenant, ALICE, events=3)  # after the training: not in v1
    body = _erase(api)
    model = body["result"]["receipt"]["model"]
    assert model["status"] == "final"
    assert model["outcome"] == "not_trained_on_subject"
    assert model["model_version"]["label"] == "v1"
    assert model["artifact_sha256"] == _file_sha256(v1)
    assert key.encode() not in _file_keys(v1)
    assert "nothing to retrain" in model["text"]
    assert not _request(tenant, body).model_update_pending
    assert len(_finals(tenant)) == 1


def test_a_tenant_without_a_model_gets_a_final_receipt_that_says_so(tenant, api):
    seed_subject(tenant, ALICE, events=3)
    body = _erase(api)
    model = body["result"]["receipt"]["model"]
    assert model["status"] == "final"
    assert model["outcome"] == "no_model"
    assert model["model_version"] is None
    assert model["artifact_sha256"] is None
    assert model["text"] == ("Final: this service has never had a recommendation model, so "
                             "no model learned from your data.")
    assert not _request(tenant, body).model_update_pending


def test_the_portal_the_email_and_the_export_show_the_model_section(tenant, api, client):
    key, _ = _model_with(tenant)
    pr = make_request(tenant, "erasure", ALICE, channel=PrivacyRequest.Channel.MAIL)
    pr.refresh_from_db()
    assert pr.status == "completed"
    (sent,) = [m for m in mail.outbox if "completed" in m.subject]
    assert "Recommendation model: model update pending" in sent.body
    assert "becomes final" in sent.body
    page = client.get(f"/privacy/{tenant.slug}/requests/{pr.reference}").content.decode()
    assert 'id="model-status">model update pending<' in page
    rows = _export_requests(tenant, key)
    assert rows[-1]["erasure_model_update"] == "model update pending"
    _retrain(tenant)
    page = client.get(f"/privacy/{tenant.slug}/requests/{pr.reference}").content.decode()
    assert 'id="model-status">final<' in page
    assert PrivacyRequest.objects.for_tenant(tenant).get(pk=pr.pk).result["receipt"][
        "model"]["artifact_sha256"] in page
    assert _export_requests(tenant, key)[-1]["erasure_model_update"] == "final"
