"""The audit trail's keys and hashes: what makes it survive an insider (issue 14, point 4).

**Keyed entries.** Each entry's hash is an HMAC-SHA256 over its canonical content and the
previous entry's hash, under a per-tenant *chain key* derived from ``DISCREET_MASTER_KEY``
(HMAC of the master key with a fixed label and the tenant id). The key is never stored: an
insider with write access to the database alone cannot compute a valid hash for an altered,
inserted or reordered entry, so the first such entry fails verification by name.

**Entries written before the switch.** Chains written before keyed hashes used plain SHA-256.
They are not rewritten (re-hashing would launder whatever they hold); instead the chain head
records ``keyed_from_sequence``: entries before it are checked with the old plain hash, entries
from it on with the keyed one. Migration 0005 sets it to ``last_sequence + 1`` for every
existing chain; a new chain is keyed from entry 1. A per-chain switch (not a per-entry flag)
leaves nothing for an insider to flip on one entry, and the head's **seal** (an HMAC under the
chain key over the switch and the pruning checkpoint) stops them from moving the switch to
declare keyed entries "plain" (a downgrade) or moving the checkpoint to hide the oldest
entries. The seal does not pin the head's newest entry: that is what exported heads are for.

**Signed heads outside the database.** Each head line written by ``export_audit_heads`` is
signed with a per-tenant *heads key* (another label), so a forged or edited line is caught.

**Master key rotation.** New hashes use the current master key; verification also accepts
the keys derived from ``DISCREET_MASTER_KEY_PREVIOUS``. Keep a retired master key there for
as long as audit entries or head lines made under it are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings

GENESIS_HASH = "0" * 64
CHAIN_LABEL = b"discreet/audit-chain/v1\x00"
HEADS_LABEL = b"discreet/audit-heads/v1\x00"


def _master_keys() -> list[str]:
    return [settings.DISCREET_MASTER_KEY, *settings.DISCREET_MASTER_KEY_PREVIOUS]


def _derive(master_key: str, label: bytes, tenant_id: int) -> bytes:
    return hmac.new(master_key.encode(), label + str(tenant_id).encode(), hashlib.sha256).digest()


def chain_keys(tenant_id: int) -> list[bytes]:
    """The tenant's chain keys, current first."""
    return [_derive(master, CHAIN_LABEL, tenant_id) for master in _master_keys()]


def heads_keys(tenant_id: int) -> list[bytes]:
    """The tenant's head-signing keys, current first."""
    return [_derive(master, HEADS_LABEL, tenant_id) for master in _master_keys()]


def canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def plain_digest(message: bytes) -> str:
    """The hash of entries written before keyed hashes (plain SHA-256)."""
    return hashlib.sha256(message).hexdigest()


def keyed_digest(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def matches_any(keys: Iterable[bytes], message: bytes, digest: str) -> bool:
    """Whether ``digest`` is the HMAC of ``message`` under one of ``keys`` (constant time)."""
    return any(hmac.compare_digest(keyed_digest(key, message), digest) for key in keys)


def seal_message(*, tenant_id: int, keyed_from_sequence: int, pruned_through_sequence: int,
                 pruned_through_hash: str) -> bytes:
    """What the chain head's seal covers: the hash-scheme switch and the pruning checkpoint."""
    return canonical({"tenant": tenant_id, "keyed_from_sequence": keyed_from_sequence,
                      "pruned_through": [pruned_through_sequence, pruned_through_hash]})


def head_seal(*, tenant_id: int, keyed_from_sequence: int, pruned_through_sequence: int,
              pruned_through_hash: str) -> str:
    return keyed_digest(chain_keys(tenant_id)[0], seal_message(
        tenant_id=tenant_id, keyed_from_sequence=keyed_from_sequence,
        pruned_through_sequence=pruned_through_sequence, pruned_through_hash=pruned_through_hash))
