"""Model artifacts: numpy arrays in one ``.npz`` (never pickle), written through Django's
default storage under the tenant's prefix, identified by their SHA-256 (checked on load)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.core.exceptions import ApplicationError
from apps.modeling.recommenders import (
    Recommender,
    algorithm_names,
    get_recommender,
    recommenders,
)
from apps.modeling.recommenders.base import SHARED_ARRAYS

logger = logging.getLogger("modeling.artifacts")

ARTIFACT_ROOT = "modeling"


def tenant_prefix(tenant_id: int) -> str:
    return f"{ARTIFACT_ROOT}/tenant-{tenant_id}"


@dataclass
class Artifact:
    """Everything serving and erasure need, as arrays.

    ``user_items`` holds the (pseudonymous) training interactions: serving uses it to
    exclude seen items and to explain, erasure to recompute the items a subject touched.
    ``recommender`` serves; ``embedding`` (an ``embeds_items`` algorithm, fitted in every
    training) backs the device bundle and the lineage export. They are one object when the
    served algorithm embeds items itself. ``meta`` names the served algorithm and holds
    ``<name>_params`` for every registered algorithm (``None`` for those not in the file).
    """

    meta: dict[str, Any]
    item_ids: np.ndarray          # int64 Item pks (columns)
    user_keys: np.ndarray         # S64 subject keys (rows), sorted
    user_items: Any               # scipy.sparse.csr_matrix float32 (weights before alpha)
    support: np.ndarray           # int32: distinct subjects per item
    recommender: Recommender
    embedding: Recommender

    @property
    def algorithm(self) -> str:
        return str(self.meta["algorithm"])

    def models(self) -> list[Recommender]:
        """The distinct models in the file."""
        return [self.embedding] + ([] if self.recommender is self.embedding
                                   else [self.recommender])

    def user_row(self, subject_key: str) -> int | None:
        key = subject_key.encode()
        position = int(np.searchsorted(self.user_keys, key))
        if position < len(self.user_keys) and self.user_keys[position] == key:
            return position
        return None

    def without_subject(self, row: int) -> Artifact:
        """The artifact without the subject of ``row``: their id, interactions and support
        gone, and each model's own erasure patch (``Recommender.without_subject``)."""
        keep = np.ones(len(self.user_keys), dtype=bool)
        keep[row] = False
        ui = self.user_items
        touched = ui.indices[ui.indptr[row]:ui.indptr[row + 1]].astype(np.int64)
        remaining = ui[keep].tocsr()
        support = self.support.copy()
        support[touched] -= 1
        embedding = self.embedding.without_subject(row, remaining, touched)
        recommender = (embedding if self.recommender is self.embedding
                       else self.recommender.without_subject(row, remaining, touched))
        return Artifact(meta=self.meta, item_ids=self.item_ids,
                        user_keys=self.user_keys[keep], user_items=remaining,
                        support=support, recommender=recommender, embedding=embedding)


def build_meta(recommender: Recommender, embedding: Recommender) -> dict[str, Any]:
    meta: dict[str, Any] = {"algorithm": recommender.name}
    meta.update((f"{name}_params", None) for name in algorithm_names())
    meta[f"{embedding.name}_params"] = embedding.params
    meta[f"{recommender.name}_params"] = recommender.params
    return meta


def encode_keys(keys: list[str]) -> np.ndarray:
    return np.array([k.encode() for k in keys], dtype="S64")


def dump(artifact: Artifact) -> bytes:
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(artifact.meta, sort_keys=True)),
        "item_ids": artifact.item_ids.astype(np.int64),
        "user_keys": artifact.user_keys.astype("S64"),
    }
    own = [model.to_arrays() for model in artifact.models()]
    arrays.update(own[0])  # the embedding's arrays first: the layout of every stored file
    arrays.update(ui_indptr=artifact.user_items.indptr.astype(np.int64),
                  ui_indices=artifact.user_items.indices.astype(np.int32),
                  ui_data=artifact.user_items.data.astype(np.float32),
                  support=artifact.support.astype(np.int32))
    for extra in own[1:]:
        arrays.update(extra)
    clash = SHARED_ARRAYS & {name for extra in own for name in extra}
    if clash:
        raise ValueError(f"an algorithm's arrays use the shared names {sorted(clash)}")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _load_model(meta: dict[str, Any], name: str, arrays: dict[str, np.ndarray],
                n_items: int) -> Recommender:
    return get_recommender(name).from_arrays(meta[f"{name}_params"], arrays, n_items)


def parse(data: bytes) -> Artifact:
    import scipy.sparse as sp

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    item_ids, user_keys = arrays["item_ids"], arrays["user_keys"]
    user_items = sp.csr_matrix((arrays["ui_data"], arrays["ui_indices"], arrays["ui_indptr"]),
                               shape=(len(user_keys), len(item_ids)))
    recommender = _load_model(meta, meta["algorithm"], arrays, len(item_ids))
    if recommender.embeds_items:
        embedding = recommender
    else:  # the file's item-embedding model: the one whose parameters it records
        (name,) = [r.name for r in recommenders()
                   if r.embeds_items and meta.get(f"{r.name}_params") is not None]
        embedding = _load_model(meta, name, arrays, len(item_ids))
    return Artifact(meta=meta, item_ids=item_ids, user_keys=user_keys, user_items=user_items,
                    support=arrays["support"], recommender=recommender, embedding=embedding)


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


def fingerprint(path: str) -> tuple[str, np.ndarray]:
    """``(sha256 of the file's bytes, its id map)``, read in one pass: what an erasure
    receipt checks a version against (the file itself, not the row that describes it)."""
    with default_storage.open(path, "rb") as handle:
        data = handle.read()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        keys = npz["user_keys"]
    return hashlib.sha256(data).hexdigest(), keys


def contains_subject(path: str, subject_key: str) -> bool:
    keys = read_user_keys(path)
    position = int(np.searchsorted(keys, subject_key.encode()))
    return position < len(keys) and keys[position] == subject_key.encode()


def holds_subject(path: str, subject_key: str) -> bool:
    """``contains_subject``, an unreadable file counting as not holding them (logged)."""
    try:
        return contains_subject(path, subject_key)
    except (FileNotFoundError, OSError, ValueError, KeyError):
        logger.warning("modeling.artifact_unreadable path=%s", path)
        return False
