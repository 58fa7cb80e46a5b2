"""Check the signature of a webhook Discreet sent (Standard Webhooks style).

    from discreet_client.webhooks import WebhookVerificationError, verify_signature

    try:
        event = verify_signature(secret, request.headers, request.body)
    except WebhookVerificationError:
        return 400
    if event["type"] == "privacy_request.completed": ...

Each delivery carries ``webhook-id``, ``webhook-timestamp`` (seconds since the epoch) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` of ``"<id>.<timestamp>.<body>"``, keyed
by the base64 part of the endpoint's ``whsec_…`` secret; several space-separated
signatures may be sent while a secret rotates). Pass the body exactly as received: bytes,
before any JSON parsing. ``webhook-id`` is the same on every retry: use it to ignore a
delivery you already processed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["WebhookVerificationError", "verify_signature"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


class WebhookVerificationError(Exception):
    """The delivery is not authentic, or too old or too new (a replay)."""


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing header {name}")


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes | str,
                     tolerance: int = 300, *, now: float | None = None) -> dict[str, Any]:
    """Return the delivery's JSON payload if one of its signatures matches ``secret`` and
    its timestamp is within ``tolerance`` seconds of ``now`` (default: the clock);
    otherwise raise :class:`WebhookVerificationError`."""
    message_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("invalid webhook-timestamp") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise WebhookVerificationError("webhook-timestamp outside the tolerance")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a whsec_ secret") from None
    raw = body.encode() if isinstance(body, str) else bytes(body)
    signed = f"{message_id}.{sent_at}.".encode() + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            try:
                payload = json.loads(raw)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
            if not isinstance(payload, dict):
                raise WebhookVerificationError("the body is not a JSON object")
            return payload
    raise WebhookVerificationError("no matching signature")
