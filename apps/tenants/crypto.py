"""Encryption of per-tenant secrets under the master key from the environment.

A database dump alone then cannot be used to recompute subject keys from guessed
identifiers (a dictionary attack on the HMAC): the attacker also needs DISCREET_MASTER_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


def _fernet_for(master_key: str) -> Fernet:
    # Any sufficiently random string works as a master key; derive a Fernet key from it.
    digest = hashlib.sha256(b"discreet/master-key/v1\x00" + master_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@cache
def _master(current: str, previous: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet_for(current), *(_fernet_for(k) for k in previous)])


def master_cipher() -> MultiFernet:
    return _master(settings.DISCREET_MASTER_KEY, tuple(settings.DISCREET_MASTER_KEY_PREVIOUS))


def encrypt_secret(secret: bytes) -> bytes:
    return master_cipher().encrypt(secret)


def decrypt_secret(token: bytes) -> bytes:
    return master_cipher().decrypt(bytes(token))


def reencrypt_secret(token: bytes) -> bytes:
    """Re-encrypt under the current master key (used by ``rotate_master_key``)."""
    return master_cipher().rotate(bytes(token))


def keyed_hash(secret: bytes, value: str) -> str:
    """HMAC-SHA256 as lowercase hex: the pseudonymization primitive."""
    return hmac.new(secret, value.encode("utf-8"), hashlib.sha256).hexdigest()
