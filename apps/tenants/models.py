from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import BaseModel
from apps.tenants.scoping import TenantOwnedModel, TenantQuerySet


class Tenant(BaseModel):
    """A business using the platform. Its pseudonymization secret is created with it, kept
    encrypted under the master key, and never shown to anyone."""

    class Regime(models.TextChoices):
        GDPR = "gdpr", "GDPR"
        CCPA = "ccpa", "CCPA"

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    default_regime = models.CharField(max_length=8, choices=Regime.choices, default=Regime.GDPR)
    contact_email = models.EmailField(blank=True)
    settings = models.JSONField(default=dict, blank=True)
    secret_ciphertext = models.BinaryField(editable=False)
    secret_version = models.PositiveSmallIntegerField(default=1, editable=False)
    is_active = models.BooleanField(default=True)
    # Changes with the tenant's event schema, purposes, notices and retention policies
    # (apps.tenants.config_memo): what each process may keep of them is labelled with it.
    config_revision = models.UUIDField(default=uuid.uuid4, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Membership(TenantOwnedModel):
    """A user's role in one tenant. Roles decide what they may do in the admin."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        ANALYST = "analyst", "Analyst"
        VIEWER = "viewer", "Viewer"

    WRITE_ROLES = frozenset({Role.OWNER, Role.ADMIN})

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_one_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant_id} ({self.role})"


class Scope(models.TextChoices):
    """What an API key may do. Checked per view by ``HasScope``."""

    EVENTS_WRITE = "events:write", "Send events"
    CATALOG_WRITE = "catalog:write", "Manage the item catalog"
    CONSENT_READ = "consent:read", "Read consent state"
    CONSENT_WRITE = "consent:write", "Record consent"
    RECOMMENDATIONS_READ = "recommendations:read", "Read recommendations"
    MODELS_MANAGE = "models:manage", "Train and manage models"
    PRIVACY_WRITE = "privacy:write", "Create and read privacy requests"
    RETENTION_MANAGE = "retention:manage", "Read and set retention policies"
    KEYS_MANAGE = "keys:manage", "List and revoke API keys"
    SETTINGS_MANAGE = "settings:manage", "Manage settings, webhooks, records of processing"


class ApiKeyQuerySet(TenantQuerySet):
    def usable(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiKey(TenantOwnedModel):
    """A tenant's API credential. Only a SHA-256 of the key is stored: the key is 256 random
    bits, so a fast hash is safe (no dictionary to attack), and lookups stay O(1) by prefix."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the platform's default rate for this key."
    )

    all_tenants = ApiKeyQuerySet.as_all_tenants_manager()
    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Invitation(TenantOwnedModel):
    """An owner's invitation of a colleague, by email, with a role. The link it sends holds
    a random token of which only a SHA-256 is stored; it works once, until ``expires_at``:
    accepting it sets the invitee's password (a new account) and creates the membership."""

    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices,
                            default=Membership.Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+")
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation of {self.email} ({self.role})"

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "open"
