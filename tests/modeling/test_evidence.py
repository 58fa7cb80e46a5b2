"""What the privacy app's erasure receipt reads from modeling: the activation listener and
the evidence of each stored version, read from its artifact file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.modeling.models import ModelVersion
from apps.modeling.services import (
    activate_version,
    register_activation_listener,
    stored_model_evidence,
    train_model,
)
from apps.modeling.services import training as training_module
from tests.factories.modeling import configure, planted_dataset


@pytest.fixture
def calls() -> Iterator[list[tuple[int, int]]]:
    seen: list[tuple[int, int]] = []

    def listener(tenant_id: int, version_id: int) -> None:
        seen.append((tenant_id, version_id))

    def failing(tenant_id: int, version_id: int) -> None:
        raise RuntimeError("a broken listener")

    register_activation_listener(failing)
    register_activation_listener(listener)
    try:
        yield seen
    finally:
        training_module._activation_listeners.remove(failing)
        training_module._activation_listeners.remove(listener)


@pytest.fixture
def planted(tenant):
    configure(tenant, model_algorithms=["als"])
    return planted_dataset(tenant, seed=5, groups=2, subjects_per_group=6)


def test_listeners_hear_of_an_activation_after_its_commit_only(
        tenant, planted, calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        v1 = train_model(tenant=tenant)
        assert calls == []  # not before the commit
    assert calls == [(tenant.pk, v1.pk)]  # and a failing listener did not stop it
    with django_capture_on_commit_callbacks(execute=True):
        activate_version(tenant=tenant, version=v1)  # already serving: no activation
    assert calls == [(tenant.pk, v1.pk)]


def test_a_rolled_back_activation_is_not_announced(tenant, planted, calls,
                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        train_model(tenant=tenant)
    assert callbacks  # would run on commit; the test transaction never commits them
    assert calls == []


def test_evidence_is_read_from_the_file_not_from_the_row(tenant, planted):
    version = train_model(tenant=tenant)
    (evidence,) = stored_model_evidence(tenant)
    with default_storage.open(version.artifact_path, "rb") as handle:
        data = handle.read()
    assert evidence.file_sha256 == hashlib.sha256(data).hexdigest() == version.artifact_sha256
    assert evidence.checksum_matches
    assert evidence.is_active
    assert evidence.revision == 0
    assert evidence.label == "v1"
    some_key = next(iter(planted.keys.values()))
    assert evidence.in_file(some_key)
    assert not evidence.in_file("0" * 64)
    assert not evidence.in_lineage(some_key)

    default_storage.delete(version.artifact_path)
    default_storage.save(version.artifact_path, ContentFile(data + b"x"))
    (tampered,) = stored_model_evidence(tenant)
    assert not tampered.checksum_matches
    assert tampered.recorded_sha256 == version.artifact_sha256

    default_storage.delete(version.artifact_path)
    (missing,) = stored_model_evidence(tenant, active_only=True)
    assert missing.error == "missing"
    assert not missing.checksum_matches


def test_only_the_version_in_service_is_read_when_asked(tenant, planted):
    configure(tenant, model_algorithms=["als"], model_activation_tolerance=1.0)
    train_model(tenant=tenant)
    v2 = train_model(tenant=tenant)
    assert [e.number for e in stored_model_evidence(tenant)] == [1, 2]
    (active,) = stored_model_evidence(tenant, active_only=True)
    assert active.version_id == v2.pk
    assert active.status == ModelVersion.Status.ACTIVE
