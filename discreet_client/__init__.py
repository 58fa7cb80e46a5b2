"""A small typed Python client for Discreet's ingestion and catalog APIs.

    from discreet_client import DiscreetClient, Event

    with DiscreetClient("https://discreet.example", api_key) as client:
        client.upsert_items([{"item": "book-1", "title": "Dune"}])
        summary = client.send_events([Event(subject="user-42", item="book-1", type="view")])

Events get a random ``event_id`` when created, so a batch that is retried (after a timeout,
a connection error or a 5xx/429 answer) carries the same ids and the server stores each
event exactly once. ``gpc=True`` sends ``Sec-GPC: 1`` (Global Privacy Control).
"""

from discreet_client.client import (
    DEFAULT_BATCH_SIZE,
    ApiError,
    DiscreetClient,
    Event,
    EventResult,
    IngestSummary,
)
from discreet_client.webhooks import WebhookVerificationError, verify_signature

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ApiError",
    "DiscreetClient",
    "Event",
    "EventResult",
    "IngestSummary",
    "WebhookVerificationError",
    "verify_signature",
]
