"""Signed chain heads outside the database: one append-only JSON-lines file per tenant in
``AUDIT_HEADS_DIR`` (``tenant-<id>.jsonl``).

Each line records the newest verified entry of the tenant's chain (sequence, entry id, hash,
time), the number of entries, the hash-scheme switch, when it was exported, and a signature
(HMAC under the tenant's heads key, :mod:`apps.audit.sealing`). Lines are only ever appended;
the location should be append-only storage (``chattr +a``, a WORM bucket, a mailbox) that
the database's users cannot rewrite.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from apps.audit.sealing import canonical, heads_keys, keyed_digest, matches_any

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ExportedHead:
    tenant: int
    sequence: int
    entry_id: int
    hash: str
    occurred_at: str
    count: int
    keyed_from_sequence: int
    exported_at: str
    v: int = FORMAT_VERSION

    def message(self) -> bytes:
        return canonical(asdict(self))


class BadHeadLineError(Exception):
    """A line of a head file that does not parse or whose signature does not verify."""

    def __init__(self, path: Path, line_number: int, reason: str) -> None:
        super().__init__(f"exported head line {line_number} of {path} {reason}")
        self.line_number = line_number


def heads_path(tenant_id: int) -> Path:
    return Path(settings.AUDIT_HEADS_DIR) / f"tenant-{tenant_id}.jsonl"


def append_head(head: ExportedHead) -> str:
    """Sign ``head`` and append it as one line (one ``write`` of an ``O_APPEND`` file, then
    fsync), creating the directory and file when needed. Returns the line written."""
    path = heads_path(head.tenant)
    path.parent.mkdir(parents=True, exist_ok=True)
    signature = keyed_digest(heads_keys(head.tenant)[0], head.message())
    line = json.dumps({**asdict(head), "signature": signature}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return line


def read_heads(tenant_id: int) -> list[ExportedHead]:
    """Every head exported for the tenant, oldest first; ``[]`` when none was.

    Raises :class:`BadHeadLineError` on the first line that is not a head for this tenant with a
    valid signature (a forged, edited or misplaced line)."""
    path = heads_path(tenant_id)
    if not path.exists():
        return []
    keys = heads_keys(tenant_id)
    heads = []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            fields = json.loads(text)
            signature = fields.pop("signature")
            head = ExportedHead(**fields)
        except (ValueError, TypeError, KeyError):
            raise BadHeadLineError(path, number, "is not a signed head") from None
        if head.tenant != tenant_id:
            raise BadHeadLineError(path, number, f"names tenant {head.tenant}")
        if not isinstance(signature, str) or not matches_any(keys, head.message(), signature):
            raise BadHeadLineError(path, number, "has a bad signature (forged or edited)")
        heads.append(head)
    return heads
