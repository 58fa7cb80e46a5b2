from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.jobs import DurableJob
from apps.tenants.scoping import TenantOwnedModel


class AuditEvent(TenantOwnedModel):
    """An append-only, per-tenant hash-chained record of an operation on subject data.

    It never holds a raw identifier. When it concerns a subject it holds ``subject_token``,
    a random token mapped to the subject key by :class:`SubjectAuditToken`; erasure deletes
    that mapping, so the entry outlives the subject without pointing at them, and the chain
    (which hashes the token, not the key) still verifies.
    """

    sequence = models.PositiveBigIntegerField()
    occurred_at = models.DateTimeField()
    action = models.CharField(max_length=64)
    actor_type = models.CharField(max_length=16)  # user, api_key, system, subject
    actor_id = models.CharField(max_length=64, blank=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    subject_token = models.CharField(max_length=32, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["sequence"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "sequence"], name="auditevent_one_sequence")
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"


class AuditChainHead(TenantOwnedModel):
    """The newest link of a tenant's chain. Locked while appending, so entries get
    consecutive sequence numbers; it also reveals a deleted tail. One row per tenant, keyed
    by it; tenant-owned like every other row (reached with ``for_tenant``)."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.PROTECT, primary_key=True,
                                  related_name="+")
    last_sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    # Retention prunes the oldest entries; verification then starts after this checkpoint.
    pruned_through_sequence = models.PositiveBigIntegerField(default=0)
    pruned_through_hash = models.CharField(max_length=64, blank=True)
    # Entries before this sequence were hashed with plain SHA-256 (before keyed hashes);
    # from it on, with the tenant's chain key (apps.audit.sealing).
    keyed_from_sequence = models.PositiveBigIntegerField(default=1)
    # HMAC under the chain key over keyed_from_sequence and the pruning checkpoint.
    seal = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"head of tenant {self.tenant_id} at #{self.last_sequence}"


class SubjectAuditToken(TenantOwnedModel):
    """Maps a subject key to the random token their audit entries carry. Subject data:
    erased with the subject (crypto-shredding of the link, not of the log)."""

    subject_key = models.CharField(max_length=64)
    token = models.CharField(max_length=32, unique=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "subject_key"],
                                    name="subjectaudittoken_one_per_subject")
        ]

    def __str__(self) -> str:
        return f"audit token {self.token[:6]}…"


class AuditChainVerification(TenantOwnedModel, DurableJob):
    """A verification run of one tenant's chain (nightly by beat, or on demand)."""

    job_task = "apps.audit.tasks.verify_audit_chain_task"

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    intact = models.BooleanField(null=True)
    checked_entries = models.PositiveBigIntegerField(default=0)
    first_broken_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
