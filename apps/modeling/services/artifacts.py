"""Model artifacts: numpy arrays in one ``.npz`` (never pickle), written through Django's
default storage under the tenant's prefix, identified by their SHA-256 (checked on load)."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.core.exceptions import ApplicationError

ARTIFACT_ROOT = "modeling"


def tenant_prefix(tenant_id: int) -> str:
    return f"{ARTIFACT_ROOT}/tenant-{tenant_id}"


@dataclass
class Artifact:
    """Everything serving and erasure need, as arrays.

    ``user_items`` holds the (pseudonymous) training interactions: serving uses it to
    exclude seen items and to explain, erasure to recompute the items a subject touched.
    """

    meta: dict[str, Any]
    item_ids: np.ndarray          # int64 Item pks (columns)
    user_keys: np.ndarray         # S64 subject keys (rows), sorted
    item_factors: np.ndarray      # float32 items x factors
    user_factors: np.ndarray      # float32 users x factors
    user_items: Any               # scipy.sparse.csr_matrix float32 (weights before alpha)
    support: np.ndarray           # int32: distinct subjects per item
    similarity: Any = None        # csr items x items (BM25 only)

    @property
    def algorithm(self) -> str:
        return str(self.meta["algorithm"])

    def user_row(self, subject_key: str) -> int | None:
        key = subject_key.encode()
        position = int(np.searchsorted(self.user_keys, key))
        if position < len(self.user_keys) and self.user_keys[position] == key:
            return position
        return None


def encode_keys(keys: list[str]) -> np.ndarray:
    return np.array([k.encode() for k in keys], dtype="S64")


def dump(artifact: Artifact) -> bytes:
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(artifact.meta, sort_keys=True)),
        "item_ids": artifact.item_ids.astype(np.int64),
        "user_keys": artifact.user_keys.astype("S64"),
        "item_factors": artifact.item_factors.astype(np.float32),
        "user_factors": artifact.user_factors.astype(np.float32),
        "ui_indptr": artifact.user_items.indptr.astype(np.int64),
        "ui_indices": artifact.user_items.indices.astype(np.int32),
        "ui_data": artifact.user_items.data.astype(np.float32),
        "support": artifact.support.astype(np.int32),
    }
    if artifact.similarity is not None:
        sim = artifact.similarity.tocsr()
        arrays.update(sim_indptr=sim.indptr.astype(np.int64),
                      sim_indices=sim.indices.astype(np.int32),
                      sim_data=sim.data.astype(np.float32))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def parse(data: bytes) -> Artifact:
    import scipy.sparse as sp

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        item_ids = npz["item_ids"]
        user_keys = npz["user_keys"]
        shape = (len(user_keys), len(item_ids))
        user_items = sp.csr_matrix((npz["ui_data"], npz["ui_indices"], npz["ui_indptr"]),
                                   shape=shape)
        similarity = None
        if "sim_indptr" in npz.files:
            similarity = sp.csr_matrix(
                (npz["sim_data"], npz["sim_indices"], npz["sim_indptr"]),
                shape=(len(item_ids), len(item_ids)))
        return Artifact(
            meta=json.loads(str(npz["meta"])), item_ids=item_ids, user_keys=user_keys,
            item_factors=npz["item_factors"], user_factors=npz["user_factors"],
            user_items=user_items, support=npz["support"], similarity=similarity)


def save(tenant_id: int, artifact: Artifact, *, label: str) -> tuple[str, str, int]:
    """Write the artifact; returns ``(storage name, sha256, bytes)``."""
    data = dump(artifact)
    digest = hashlib.sha256(data).hexdigest()
    name = f"{tenant_prefix(tenant_id)}/{label}-{secrets.token_hex(6)}.npz"
    stored = default_storage.save(name, ContentFile(data))
    return stored, digest, len(data)


def load(path: str, sha256: str) -> Artifact:
    """Read and verify an artifact; a missing or altered file is an ``ApplicationError``."""
    try:
        with default_storage.open(path, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError) as exc:
        raise ApplicationError("The model artifact is missing.", code="artifact_missing",
                               status_code=503) from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ApplicationError("The model artifact failed its checksum.",
                               code="artifact_corrupt", status_code=503)
    return parse(data)


def delete(path: str) -> None:
    if path and default_storage.exists(path):
        default_storage.delete(path)


def list_files(tenant_id: int) -> list[str]:
    prefix = tenant_prefix(tenant_id)
    try:
        _, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [f"{prefix}/{name}" for name in files if name.endswith(".npz")]


def read_user_keys(path: str) -> np.ndarray:
    """Only the id map of a stored artifact (for erasure checks); no checksum needed to
    *find* a subject, and a damaged file must still be searchable."""
    with default_storage.open(path, "rb") as handle, np.load(
            io.BytesIO(handle.read()), allow_pickle=False) as npz:
        return npz["user_keys"]


def contains_subject(path: str, subject_key: str) -> bool:
    keys = read_user_keys(path)
    position = int(np.searchsorted(keys, subject_key.encode()))
    return position < len(keys) and keys[position] == subject_key.encode()
