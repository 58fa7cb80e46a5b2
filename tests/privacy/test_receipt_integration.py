"""The erasure receipt's model section end to end, on PostgreSQL with the real worker: a
model learns from a subject, the subject is erased through the API, the receipt says
"model update pending" until the retrain that leaves them out is in service, then it is
final with that version, the checked absence of their key and the file's checksum."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from django.core.files.storage import default_storage

from apps.audit.models import AuditEvent
from apps.core.jobs import DurableJob
from apps.modeling.models import ModelVersion, TrainingRun
from apps.modeling.services import artifacts_holding_subject, request_training, start_due_retrains
from platform_site.settings import test as test_settings
from tests.factories.modeling import add_events, configure, planted_dataset
from tests.factories.privacy import seed_subject
from tests.integration_support import wait_for

pytestmark = pytest.mark.integration

URL = "/api/v1/privacy-requests"
ALICE = "alice@example.com"


@pytest.fixture
def shared_media(settings):
    """The worker's media root (the privacy suite's own default is a temporary one): the
    artifact the worker writes is the file this test hashes."""
    settings.MEDIA_ROOT = test_settings.MEDIA_ROOT


def _run(run_id: int) -> TrainingRun:
    return TrainingRun.all_tenants.get(pk=run_id)  # polled by id alone


def _trained(tenant, run: TrainingRun) -> ModelVersion:
    wait_for(lambda: _run(run.pk).status in {DurableJob.Status.SUCCEEDED,
                                              DurableJob.Status.FAILED}, timeout=120)
    run = _run(run.pk)
    assert run.status == DurableJob.Status.SUCCEEDED, run.last_error
    return ModelVersion.objects.for_tenant(tenant).get(pk=run.model_version_id)


def _file(version: ModelVersion) -> bytes:
    with default_storage.open(version.artifact_path, "rb") as handle:
        return handle.read()


def test_the_receipt_is_final_once_the_retrain_without_the_subject_serves(
        tenant, api, live_worker, shared_media):
    configure(tenant, model_algorithms=["als"])  # debounce 0: a retrain is due at once
    planted_dataset(tenant, seed=3, groups=2, subjects_per_group=6)
    key = seed_subject(tenant, ALICE, events=4)
    add_events(tenant, ALICE, ["g0-item1", "g0-item2", "g0-item3"], subject_key=key)
    v1 = _trained(tenant, request_training(tenant=tenant))  # on the worker
    assert artifacts_holding_subject(tenant, key)

    created = api.post(URL, {"kind": "erasure", "subject": ALICE}, format="json").json()
    wait_for(lambda: api.get(f"{URL}/{created['id']}").json()["status"] == "completed",
             timeout=90)
    body = api.get(f"{URL}/{created['id']}").json()
    model = body["result"]["receipt"]["model"]
    assert model["status"] == "pending", model
    assert model["label"] == "model update pending"
    assert model["model_version"]["id"] == v1.pk
    assert body["result"]["receipt"]["model_versions"] == ["v1"]

    # The beat's debounced retrain (started here by hand), trained on the worker.
    assert start_due_retrains() >= 1
    run = TrainingRun.objects.for_tenant(tenant).order_by("-pk").first()
    v2 = _trained(tenant, run)

    def final() -> dict | None:
        model = api.get(f"{URL}/{created['id']}").json()["result"]["receipt"]["model"]
        return model if model["status"] == "final" else None

    model = wait_for(final, timeout=60)  # the activation listener's task, on the worker
    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.ACTIVE
    assert model["model_version"]["id"] == v2.pk
    assert model["model_version"]["number"] == 2
    assert model["outcome"] == "retrained"
    assert model["snapshot_contained_subject"] is False
    data = _file(v2)
    assert model["artifact_sha256"] == hashlib.sha256(data).hexdigest()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert key.encode() not in npz["user_keys"]
    assert model["final_at"] >= model["model_version"]["activated_at"]
    (entry,) = AuditEvent.objects.for_tenant(tenant).filter(
        action="privacy.erasure_receipt_final")
    assert entry.details["model_version"] == 2
    assert key not in str(entry.details)
