"""What the API answers, as ``TypedDict``s: the JSON is returned as parsed, so a field the
server adds later is still there (``total=False`` marks the fields that are not always sent).
The OpenAPI schema at ``/api/schema/`` is the reference."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

PrivacyKind = Literal["access", "portability", "erasure", "rectification", "restriction",
                      "objection", "opt_out", "limit_sensitive"]
Regime = Literal["gdpr", "ccpa"]
Level = Literal["off", "session", "full"]


class Because(TypedDict):
    item: str
    weight: float


class _RecommendedItem(TypedDict):
    item: str
    score: float


class RecommendedItem(_RecommendedItem, total=False):
    because: list[Because]  # with explain=True only


class Recommendations(TypedDict):
    model_version: int | None
    personalized: bool
    reason: str | None  # why not personalized: restricted, no_consent, level_off, ...
    items: list[RecommendedItem]


class ModelBundle(TypedDict):
    model_version: int
    algorithm: str
    factors_algorithm: str
    min_support: int
    factors: int
    regularization: float
    alpha: float
    items: list[str]
    item_factors: list[list[float]]
    gram: list[list[float]]


class PurposeConsent(TypedDict, total=False):
    granted: bool
    allowed: bool  # whether the purpose may be used now (granted, not expired, basis holds)
    default: bool
    legal_basis: str
    sale_or_sharing: bool
    source: str | None
    method: str | None
    notice_version: str | None
    at: str | None
    expires_at: str | None
    expired: bool
    needs_renewal: bool


class SubjectConsent(TypedDict):
    purposes: dict[str, PurposeConsent]
    level: str
    chosen_level: str | None
    flags: dict[str, Any]
    history: list[dict[str, Any]]
    history_truncated: bool


class _PrivacyRequest(TypedDict):
    id: int
    kind: str
    regime: str
    channel: str
    status: str
    received_at: str
    due_at: str
    acknowledged_at: str | None
    verification: dict[str, Any] | None
    extension: dict[str, Any] | None
    completed_at: str | None
    rejection: dict[str, Any] | None
    result: Any
    download: dict[str, Any] | None
    erasure_verification: dict[str, Any] | None


class PrivacyRequest(_PrivacyRequest, total=False):
    duplicate_of: int  # set when an open request for the same subject and kind exists


class RetentionPolicy(TypedDict, total=False):
    category: str
    days: int | None
    hours: int | None
    period_seconds: int
    follows: str | None
    editable: bool
    default_days: int
    unit: str
    label: str
    description: str
    updated_at: str | None


class ApiKey(TypedDict):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: str
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None


class ApiRoot(TypedDict):
    tenant: dict[str, Any]
    api_key: dict[str, Any]
    links: dict[str, str]


class ItemUpsertTotals(TypedDict):
    received: int
    created: int
    updated: int
    dropped_attributes: dict[str, int]


class Webhook(TypedDict, total=False):
    id: int
    url: str
    description: str
    events: list[str]
    is_active: bool
    created_at: str
    secret: str  # in the answer to the create call only: store it then


class TenantSettings(TypedDict):
    settings: dict[str, Any]           # every setting's effective value
    customized: list[str]              # the names set for this tenant (not defaults)
    declarations: dict[str, dict[str, Any]]  # type, default, help, range or choices
