"""Webhook endpoints a tenant registers, and one delivery (a durable job) per event and
endpoint (README "Webhooks")."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.jobs import DurableJob
from apps.tenants.scoping import TenantOwnedModel, TenantQuerySet


class EventType(models.TextChoices):
    """Every event a tenant can subscribe to. The privacy-request ones are named after the
    request's status (``privacy_request.<status>``) plus ``overdue``."""

    PRIVACY_REQUEST_RECEIVED = "privacy_request.received", "Privacy request received"
    PRIVACY_REQUEST_VERIFIED = "privacy_request.verified", "Privacy request verified"
    PRIVACY_REQUEST_AWAITING_APPROVAL = ("privacy_request.awaiting_approval",
                                         "Privacy request awaiting approval")
    PRIVACY_REQUEST_COMPLETED = "privacy_request.completed", "Privacy request completed"
    PRIVACY_REQUEST_REJECTED = "privacy_request.rejected", "Privacy request rejected"
    PRIVACY_REQUEST_OVERDUE = "privacy_request.overdue", "Privacy request overdue"
    MODEL_ACTIVATED = "model.activated", "Model activated"
    RETENTION_COMPLETED = "retention.completed", "Retention run completed"
    AUDIT_CHAIN_BROKEN = "audit.chain_broken", "Audit chain broken"


class WebhookEndpointQuerySet(TenantQuerySet):
    def live(self) -> WebhookEndpointQuerySet:
        """Not deleted (a deleted endpoint is kept for its delivery log, never shown)."""
        return self.filter(deleted_at__isnull=True)


class WebhookEndpoint(TenantOwnedModel):
    """An https URL of the tenant's that receives the events it subscribes to, signed with
    its own secret (Standard Webhooks). The secret is shown once, when the endpoint is
    created, and kept encrypted under the master key."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="The event types it receives.")
    secret_ciphertext = models.BinaryField(editable=False)
    is_active = models.BooleanField(
        default=True, help_text="Inactive: new events are not sent to it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    all_tenants = WebhookEndpointQuerySet.as_all_tenants_manager()
    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(TenantOwnedModel, DurableJob):
    """One event sent to one endpoint: a durable job retried with exponential backoff and
    jitter until the endpoint answers 2xx or the retry window (24 hours) is spent.

    ``message_id`` is the ``webhook-id`` header: the same on every attempt (receivers
    dedupe by it). While a retry waits, ``enqueued_at`` is the moment it is due
    (``next_attempt_at``), so the job sweeper leaves it alone until then."""

    job_task = "apps.webhooks.tasks.deliver_webhook_task"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="deliveries")
    message_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64, choices=EventType.choices)
    payload = models.JSONField(default=dict, help_text="Ids and statuses only.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # One delivery of a message per endpoint: an event emitted twice (a redelivered
            # task, an hourly check) is sent once.
            models.UniqueConstraint(fields=["endpoint", "message_id"],
                                    name="webhookdelivery_one_per_message"),
        ]
        indexes = [models.Index(fields=["tenant", "status"],
                                name="webhookdelivery_status"),
                   models.Index(fields=["status"], condition=Q(status="pending"),
                                name="webhookdelivery_pending"),
                   # Retention's predicate (category ``webhook_deliveries``).
                   models.Index(fields=["tenant", "created_at"],
                                name="webhookdelivery_created")]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"
