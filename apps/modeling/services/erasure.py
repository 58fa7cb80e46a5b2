"""The modeling side of data-subject requests (DESIGN step 8, GDPR Art. 15/17).

* **Erase** (``erase_subject``): in the active model, the subject's id mapping and
  interactions are removed at once and every model in the artifact applies its own erasure
  patch (``Recommender.without_subject``: ALS drops their factor row and recomputes the
  items they touched with an exact half-step, item-kNN recomputes its similarity from the
  remaining interactions). The patched artifact replaces the old file. Any other stored artifact
  holding the subject is destroyed. The active version is marked as still holding an
  erased subject's influence and a retrain is requested; once the retrain activates, the
  patched artifact is destroyed too. An audit entry lists the versions that contained them.
* **Export** (``export_subject``): lineage, i.e. the stored model versions that contain the
  subject and the categories the model infers they like.
* **Verify** (``artifacts_holding_subject``): every stored artifact file still holding the
  subject, registered or not (the privacy app's erasure verifier calls it).
* **Evidence** (``stored_model_evidence``): what each stored version's artifact file shows
  when read now (its SHA-256, its subject index, the lineage of subjects patched out), from
  which the privacy app proves, for an erasure receipt, that the model in service was
  trained on a snapshot without the subject.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from apps.audit import services as audit
from apps.events.selectors import list_items
from apps.modeling.models import ModelVersion, ServingState, TrainingRun
from apps.modeling.selectors import list_stored_versions, list_subject_model_versions
from apps.modeling.services import artifacts
from apps.modeling.services.training import (
    destroy_artifact,
    request_retrain_later,
    serving_state,
)
from apps.tenants.models import Tenant

logger = logging.getLogger("modeling.erasure")

#: An unregistered artifact younger than this may belong to a training run about to
#: register it; older ones are leftovers of killed runs and are deleted by an erasure.
ORPHAN_GRACE = timedelta(minutes=30)


holds_subject = artifacts.holds_subject


def stored_versions(tenant: Tenant) -> list[ModelVersion]:
    return list_stored_versions(tenant=tenant)


def _orphans(tenant: Tenant) -> list[str]:
    registered = set(ModelVersion.objects.for_tenant(tenant).exclude(artifact_path="")
                     .filter(artifact_destroyed_at__isnull=True)
                     .values_list("artifact_path", flat=True))
    return [p for p in artifacts.list_files(tenant.pk) if p not in registered]


def patch_out_subject(tenant: Tenant, version: ModelVersion, state: ServingState,
                      subject_key: str, *, keep_lineage: bool = False) -> int:
    """Rewrite ``version``'s artifact without the subject (``Artifact.without_subject``: their
    row, interactions and support gone, each model's own patch of the items they touched).
    The version counts one more removed subject, so that the retrain replaces it; the active
    revision moves so that every serving process reloads it. Returns the items touched
    (0: the subject was not in it). Runs inside the caller's transaction, ``state`` locked.
    ``keep_lineage`` (a subject control, not an erasure): the version remembers that it was
    trained on the subject (``removed_subject_keys``) while its artifact is stored."""
    artifact = artifacts.load(version.artifact_path, version.artifact_sha256)
    row = artifact.user_row(subject_key)
    if row is None:
        return 0
    touched = int(artifact.user_items.indptr[row + 1] - artifact.user_items.indptr[row])
    patched = artifact.without_subject(row)
    old_path = version.artifact_path
    path, digest, size = artifacts.save(tenant.pk, patched,
                                        label=f"v{version.number}-r{version.revision + 1}")
    version.artifact_path, version.artifact_sha256, version.artifact_bytes = path, digest, size
    version.revision += 1
    version.erased_subjects += 1
    if keep_lineage and subject_key not in version.removed_subject_keys:
        version.removed_subject_keys = [*version.removed_subject_keys, subject_key]
    version.save(update_fields=["artifact_path", "artifact_sha256", "artifact_bytes",
                                "revision", "erased_subjects", "removed_subject_keys",
                                "updated_at"])
    if version.status == ModelVersion.Status.ACTIVE:
        state.active_revision = version.revision
        state.save(update_fields=["active_revision", "updated_at"])
    transaction.on_commit(lambda: artifacts.delete(old_path))
    return touched


def erase_subject(tenant: Tenant, subject_key: str) -> int:
    """Erasure hook (see the module docstring). Idempotent: a second call finds the subject
    in no artifact and does nothing. Returns the number of artifacts changed or destroyed."""
    changed = 0
    with transaction.atomic():
        state = serving_state(tenant, lock=True)
        lineage: list[int] = []
        touched = 0
        for version in stored_versions(tenant):
            held = holds_subject(version.artifact_path, subject_key)
            removed = subject_key in version.removed_subject_keys
            if not (held or removed):
                continue
            lineage.append(version.number)
            if removed:  # patched out by a subject control: only the lineage names them
                version.removed_subject_keys = [
                    k for k in version.removed_subject_keys if k != subject_key]
                version.save(update_fields=["removed_subject_keys", "updated_at"])
            if version.status == ModelVersion.Status.ACTIVE:
                if held:
                    touched = patch_out_subject(tenant, version, state, subject_key)
            else:
                destroy_artifact(tenant=tenant, version=version, why="held an erased subject")
            changed += 1
        cutoff = timezone.now() - ORPHAN_GRACE
        for path in _orphans(tenant):
            if holds_subject(path, subject_key) and _modified_before(path, cutoff):
                transaction.on_commit(lambda path=path: artifacts.delete(path))
                changed += 1
        if lineage:
            audit.record(tenant, "modeling.subject_erased", None, ("modeling.modelversion", ""),
                         {"versions": lineage, "touched_items": touched},
                         subject_key=subject_key)
    if changed:
        request_retrain_later(tenant_id=tenant.pk, reason=TrainingRun.Reason.ERASURE)
    return changed


def _modified_before(path: str, cutoff: Any) -> bool:
    from django.core.files.storage import default_storage

    try:
        return default_storage.get_modified_time(path) < cutoff
    except (NotImplementedError, OSError):
        return True


def _inferred_categories(tenant: Tenant, artifact: artifacts.Artifact, row: int) -> list[str]:
    scores = artifact.embedding.score_subject(row, artifact.user_items)
    top = np.argsort(-scores, kind="stable")[:20]
    pks = [int(artifact.item_ids[c]) for c in top.tolist()]
    counts: Counter[str] = Counter()
    for categories in list_items(tenant=tenant).filter(pk__in=pks).values_list(
            "categories", flat=True):
        counts.update(str(c) for c in (categories or []))
    return [name for name, _ in counts.most_common(5)]


def export_subject(tenant: Tenant, subject_key: str) -> dict[str, Any]:
    """Lineage for an access request: the stored versions trained on the subject's data
    and what each infers about them (top categories of their best-scored items)."""
    versions = []
    for version in list_subject_model_versions(tenant=tenant, subject_key=subject_key):
        entry: dict[str, Any] = {"model_version": version.number, "algorithm": version.algorithm,
                                 "status": version.status,
                                 "trained_at": version.created_at.isoformat(),
                                 "consent_snapshot_at": version.consent_snapshot_at.isoformat()}
        try:
            artifact = artifacts.load(version.artifact_path, version.artifact_sha256)
            row = artifact.user_row(subject_key)
            if row is not None:
                entry["inferred_top_categories"] = _inferred_categories(tenant, artifact, row)
                entry["interactions_used"] = int(artifact.user_items.indptr[row + 1]
                                                 - artifact.user_items.indptr[row])
        except Exception:  # an unreadable artifact still shows in the lineage
            logger.warning("modeling.export_artifact_unreadable version=%s", version.pk)
        versions.append(entry)
    return {"model_versions": versions}


def artifacts_holding_subject(tenant: Tenant, subject_key: str) -> list[str]:
    """Erasure verifier: every stored artifact (registered or not) still holding the
    subject's key in its id map."""
    places = [f"modeling.ModelVersion v{v.number}: {v.artifact_path}"
              for v in stored_versions(tenant) if holds_subject(v.artifact_path, subject_key)]
    places += [f"unregistered model artifact: {path}" for path in _orphans(tenant)
               if holds_subject(path, subject_key)]
    return places


def describe_subject(tenant: Tenant, subject_key: str) -> dict[str, Any]:
    """Erasure describer (privacy registry): the versions the subject was part of, named in
    the erasure receipt before the erasure runs."""
    return {"model_versions": [
        f"v{v.number}" for v in list_subject_model_versions(tenant=tenant,
                                                            subject_key=subject_key)]}


@dataclass(frozen=True)
class ArtifactEvidence:
    """One stored version and its artifact file as read now. ``file_sha256`` is the hash of
    the bytes on storage (``""`` when the file could not be read: ``error`` says why).

    The file's subject index is the training snapshot's subjects (``revision == 0``: the
    file is what training wrote), less any subject patched out of it since: by a subject
    control (then named in the lineage) or by an erasure (``revision`` counts every
    rewrite)."""

    version_id: int
    number: int
    status: str
    created_at: datetime
    consent_snapshot_at: datetime
    activated_at: datetime | None
    revision: int
    recorded_sha256: str
    file_sha256: str
    error: str
    user_keys: np.ndarray = field(repr=False)
    lineage: frozenset[str] = field(repr=False)

    @property
    def label(self) -> str:
        return f"v{self.number}"

    @property
    def is_active(self) -> bool:
        return self.status == ModelVersion.Status.ACTIVE

    @property
    def checksum_matches(self) -> bool:
        return bool(self.file_sha256) and self.file_sha256 == self.recorded_sha256

    def in_file(self, subject_key: str) -> bool:
        key = subject_key.encode()
        position = int(np.searchsorted(self.user_keys, key))
        return position < len(self.user_keys) and self.user_keys[position] == key

    def in_lineage(self, subject_key: str) -> bool:
        return subject_key in self.lineage


def stored_model_evidence(tenant: Tenant, *, active_only: bool = False
                          ) -> list[ArtifactEvidence]:
    """Every stored version of ``tenant`` (``active_only``: only the one in service) with
    its artifact file read now, oldest first. Reads only; an unreadable file is reported
    in its entry, never raised."""
    versions = stored_versions(tenant)
    active = ModelVersion.objects.for_tenant(tenant).filter(
        status=ModelVersion.Status.ACTIVE).first()
    if active is not None and active.pk not in {v.pk for v in versions}:
        versions.append(active)  # in service without a stored file: reported as missing
    evidence = []
    for version in sorted(versions, key=lambda v: v.number):
        if active_only and version.status != ModelVersion.Status.ACTIVE:
            continue
        digest, error = "", ""
        keys = np.zeros(0, dtype="S64")
        try:
            if not version.has_artifact:
                raise FileNotFoundError(version.artifact_path)
            digest, keys = artifacts.fingerprint(version.artifact_path)
        except FileNotFoundError:
            error = "missing"
        except (OSError, ValueError, KeyError):
            error = "unreadable"
        evidence.append(ArtifactEvidence(
            version_id=version.pk, number=version.number, status=version.status,
            created_at=version.created_at, consent_snapshot_at=version.consent_snapshot_at,
            activated_at=version.activated_at, revision=version.revision,
            recorded_sha256=version.artifact_sha256, file_sha256=digest, error=error,
            user_keys=np.sort(keys), lineage=frozenset(version.removed_subject_keys)))
    return evidence
