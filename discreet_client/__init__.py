"""A typed Python client for every public route of Discreet's API.

    from discreet_client import DiscreetClient, Event

    with DiscreetClient("https://discreet.example", api_key) as client:
        client.upsert_items([{"item": "book-1", "title": "Dune"}])
        summary = client.send_events([Event(subject="user-42", item="book-1", type="view")])
        recs = client.recommendations("user-42", n=5, explain=True)

Events get a random ``event_id`` when created, so a batch that is retried (after a timeout,
a connection error or a 5xx/429 answer) carries the same ids and the server stores each
event exactly once. ``gpc=True`` sends ``Sec-GPC: 1`` (Global Privacy Control). Every
failure raises :class:`ApiError` with the API's error ``code``.
"""

from discreet_client.client import (
    DEFAULT_BATCH_SIZE,
    ApiError,
    DiscreetClient,
    Event,
    EventResult,
    IngestSummary,
)
from discreet_client.types import (
    ApiKey,
    ApiRoot,
    Because,
    ItemUpsertTotals,
    ModelBundle,
    PrivacyRequest,
    PurposeConsent,
    Recommendations,
    RecommendedItem,
    RetentionPolicy,
    SubjectConsent,
    TenantSettings,
    Webhook,
)
from discreet_client.webhooks import WebhookVerificationError, verify_signature

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ApiError",
    "ApiKey",
    "ApiRoot",
    "Because",
    "DiscreetClient",
    "Event",
    "EventResult",
    "IngestSummary",
    "ItemUpsertTotals",
    "ModelBundle",
    "PrivacyRequest",
    "PurposeConsent",
    "Recommendations",
    "RecommendedItem",
    "RetentionPolicy",
    "SubjectConsent",
    "TenantSettings",
    "Webhook",
    "WebhookVerificationError",
    "verify_signature",
]
