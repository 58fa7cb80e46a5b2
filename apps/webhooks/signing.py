"""Signatures in the style of the Standard Webhooks specification
(https://www.standardwebhooks.com/): a delivery carries

* ``webhook-id``: the message id, the same on every attempt;
* ``webhook-timestamp``: seconds since the epoch, when this attempt was signed;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``,

where the key is the base64 part of the endpoint's secret ``whsec_<base64>``. Receivers
check it with ``discreet_client.webhooks.verify_signature``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


def message_id_for(*, tenant_id: int, dedupe_key: str) -> str:
    """A message id that is the same whenever the same event is emitted again."""
    digest = hashlib.sha256(f"{tenant_id}\x00{dedupe_key}".encode()).hexdigest()
    return "msg_" + digest[:32]


def sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(*, secret: str, message_id: str, timestamp: int,
                   body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret=secret, message_id=message_id, timestamp=timestamp,
                                  body=body),
        "content-type": "application/json",
    }
