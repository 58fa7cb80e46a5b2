"""The tombstone store outside the database, so that erasures survive a restore.

Every :class:`~apps.privacy.models.ErasureTombstone` row is also appended, after its
transaction commits, to a file per tenant under ``settings.TOMBSTONE_DIR``. A database
dump taken before an erasure lacks the row; this store does not, and
``manage.py replay_erasures`` reads it by default (:func:`read_tombstones`).

Format: JSON lines, one ``{"v": 1, "token": ...}`` per tombstone, the token being the
record encrypted under the master key (:func:`apps.tenants.crypto.encrypt_secret`): the
file holds no subject key in the clear, and no raw identifier at all (the record names the
tenant, the pseudonymous subject key, when, and the request's reference).

Append-only: a line is only ever added (``O_APPEND``, under an exclusive lock, then
``fsync``), except by retention: records older than the tenant's ``erasure_tombstones``
period are dropped (:func:`prune_tombstone_store`, hourly housekeeping), as the rows are.
Writing is idempotent: a record already in the file is not written again, and readers
de-duplicate anyway (two writers racing, a replay re-writing). A record names its
tenant by id, slug and creation time, so a record never applies to another tenant that
reuses an id.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction

from apps.privacy.models import ErasureTombstone
from apps.tenants.crypto import decrypt_secret, encrypt_secret
from apps.tenants.models import Tenant

logger = logging.getLogger("privacy.tombstones")

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TombstoneRecord:
    """One erasure, as the store keeps it (encrypted)."""

    tenant_id: int
    tenant_slug: str
    tenant_created_at: str  # ISO; with id and slug, names the tenant across a restore
    subject_key: str
    erased_at: str  # ISO
    request_reference: str  # "" when the tombstone has no request

    @property
    def identity(self) -> tuple[int, str, str]:
        """What makes two records the same tombstone (readers keep the first)."""
        return (self.tenant_id, self.subject_key, self.request_reference)

    @property
    def erased(self) -> datetime:
        return datetime.fromisoformat(self.erased_at)

    def belongs_to(self, tenant: Tenant) -> bool:
        return (tenant.pk == self.tenant_id and tenant.slug == self.tenant_slug
                and datetime.fromisoformat(self.tenant_created_at) == tenant.created_at)


def tombstone_dir() -> Path:
    return Path(settings.TOMBSTONE_DIR)


def tenant_file(tenant_id: int) -> Path:
    return tombstone_dir() / f"tenant-{tenant_id}.jsonl"


def record_of(tombstone: ErasureTombstone) -> TombstoneRecord:
    tenant = tombstone.tenant
    request = tombstone.privacy_request
    return TombstoneRecord(
        tenant_id=tenant.pk, tenant_slug=tenant.slug,
        tenant_created_at=tenant.created_at.isoformat(),
        subject_key=tombstone.subject_key, erased_at=tombstone.erased_at.isoformat(),
        request_reference=request.reference if request is not None else "")


def _encode(record: TombstoneRecord) -> bytes:
    token = encrypt_secret(json.dumps(asdict(record), sort_keys=True).encode())
    return json.dumps({"v": FORMAT_VERSION, "token": token.decode()}).encode() + b"\n"


def _decode_lines(lines: Iterable[bytes], source: Path) -> Iterator[TombstoneRecord]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
            data = json.loads(decrypt_secret(envelope["token"].encode()))
            yield TombstoneRecord(**data)
        except (ValueError, KeyError, TypeError, InvalidToken):
            # A torn last line (a crash mid-write) or a record under an unknown master
            # key: reported, never fatal to the others.
            logger.error("privacy.tombstone_unreadable file=%s line=%s", source.name, number)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    """The tenant's file, open for appending under an exclusive lock. Retention replaces
    the file (:func:`prune_tombstone_store`); a writer that waited on the replaced file
    opens the new one, so that no record is appended to an unlinked file."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _read_fd(fd: int, path: Path) -> list[bytes]:
    with os.fdopen(os.dup(fd), "rb") as lines:  # a dup shares the lock's open file
        lines.seek(0)
        return lines.readlines()


def append_tombstones(records: Iterable[TombstoneRecord]) -> int:
    """Append the records not already in their tenant's file; returns how many were
    written. Each file is locked while it is read and appended to, then fsynced."""
    by_tenant: dict[int, list[TombstoneRecord]] = {}
    for record in records:
        by_tenant.setdefault(record.tenant_id, []).append(record)
    if not by_tenant:
        return 0
    directory = tombstone_dir()
    created_dir = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for tenant_id, pending in by_tenant.items():
        path = tenant_file(tenant_id)
        created = not path.exists()
        with _locked(path) as fd:
            existing = _read_fd(fd, path)
            seen = {r.identity for r in _decode_lines(existing, path)}
            # After a torn last line (a crash mid-write) the next record starts on its own.
            lines = [b"\n"] if existing and not existing[-1].endswith(b"\n") else []
            for record in pending:
                if record.identity not in seen:
                    seen.add(record.identity)
                    lines.append(_encode(record))
            records = [line for line in lines if line != b"\n"]
            if records:
                os.write(fd, b"".join(lines))
                os.fsync(fd)
                written += len(records)
        if created:
            _fsync_dir(directory)
    if created_dir:
        _fsync_dir(directory.parent)
    return written


def prune_tombstone_store(tenant: Tenant, cutoff: datetime) -> int:
    """Retention, the one change besides appending: drop the tenant's records of erasures
    before ``cutoff`` (the tenant's ``erasure_tombstones`` period, as for the rows). The
    file is replaced atomically (written beside it, fsynced, renamed). A line that cannot
    be read is kept. Returns how many records were dropped."""
    path = tenant_file(tenant.pk)
    if not path.exists():
        return 0
    with _locked(path) as fd:
        keep: list[bytes] = []
        dropped = 0
        for line in _read_fd(fd, path):
            decoded = list(_decode_lines([line], path))
            record = decoded[0] if decoded else None
            if (record is not None and record.belongs_to(tenant)
                    and record.erased < cutoff):
                dropped += 1
            elif line.strip():
                keep.append(line if line.endswith(b"\n") else line + b"\n")
        if dropped:
            fresh = path.with_suffix(".jsonl.new")
            with fresh.open("wb") as out:
                out.write(b"".join(keep))
                out.flush()
                os.fsync(out.fileno())
            os.chmod(fresh, 0o600)
            os.replace(fresh, path)
            _fsync_dir(path.parent)
    return dropped


def append_tombstone(tombstone: ErasureTombstone) -> int:
    return append_tombstones([record_of(tombstone)])


def store_on_commit(tombstone: ErasureTombstone) -> None:
    """Append the tombstone to the store once its row is committed (never a record of an
    erasure that was rolled back). A failure is logged loudly and does not undo the
    erasure; the next ``replay_erasures --from-database`` (or the hourly housekeeping)
    writes what is missing."""
    record = record_of(tombstone)

    def write() -> None:
        try:
            append_tombstones([record])
        except OSError:
            logger.exception("privacy.tombstone_store_failed tenant=%s", record.tenant_id)

    transaction.on_commit(write)


def read_tombstones(*, tenant: Tenant | None = None) -> list[TombstoneRecord]:
    """Every record in the store (one tenant's, if named), de-duplicated, oldest first."""
    directory = tombstone_dir()
    if tenant is not None:
        paths = [tenant_file(tenant.pk)]
    else:
        paths = sorted(directory.glob("tenant-*.jsonl")) if directory.is_dir() else []
    records: dict[tuple[int, str, str], TombstoneRecord] = {}
    for path in paths:
        if not path.exists():
            continue
        with path.open("rb") as lines:
            for record in _decode_lines(lines, path):
                records.setdefault(record.identity, record)
    found = [r for r in records.values() if tenant is None or r.belongs_to(tenant)]
    return sorted(found, key=lambda r: (r.erased, r.tenant_id))


def backfill_tombstone_store() -> int:
    """Append every tombstone row missing from the store (rows written before the store
    existed, or a write that failed). Idempotent; returns how many were written."""
    rows = (ErasureTombstone.all_tenants  # the system's own: every tenant
            .select_related("tenant", "privacy_request").order_by("erased_at", "pk"))
    return append_tombstones(record_of(t) for t in rows)
