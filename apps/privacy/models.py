"""Data-subject requests (GDPR Art. 12-22, CCPA §1798.100-135) and what proves them.

* :class:`PrivacyRequest` is the request: kind, regime, channel, status and its clocks. It is
  the *proof* of the request, kept 24 months after it closes (CCPA regulations §7101) and then
  deleted by housekeeping. The raw identifier needed to contact the requester is kept only
  encrypted, and wiped once there is nothing left to send.
* :class:`VerificationChallenge` (emailed one-time links), :class:`SignedLinkUse` (tenant-
  signed portal links already spent) and :class:`PortalSession` (a verified subject in the
  portal) are how a requester proves who they are.
* :class:`FulfilmentJob` runs every registered subject handler with a checkpoint per handler.
* :class:`DataExport` is the access/portability zip; :class:`ErasureTombstone` the ledger of
  erased subject keys that a restore replays (``manage.py replay_erasures``).
* :class:`PortalSettings` holds the tenant's portal link-signing secret (encrypted).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.jobs import DurableJob
from apps.privacy.kinds import KIND_MAX_LENGTH, kind_choices
from apps.privacy.kinds import Kind as _Kind
from apps.tenants.scoping import TenantOwnedModel

SUBJECT_KEY_LENGTH = 64


# The request's enums are module-level so that its Meta constraints can name their values;
# they are used through the model (``PrivacyRequest.Kind``...), as STYLE S2 asks.
class _Regime(models.TextChoices):
    GDPR = "gdpr", "GDPR"
    CCPA = "ccpa", "CCPA"


class _Status(models.TextChoices):
    RECEIVED = "received", "Received"
    VERIFYING = "verifying", "Verifying identity"
    VERIFIED = "verified", "Verified"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"


_OPEN = ["received", "verifying", "verified", "awaiting_approval", "in_progress"]


class PrivacyRequest(TenantOwnedModel):
    Kind = _Kind
    Regime = _Regime
    Status = _Status

    class Channel(models.TextChoices):
        PORTAL = "portal", "Privacy portal"
        API = "api", "API (tenant backend)"
        MAIL = "mail", "Mail"
        PHONE = "phone", "Phone"

    class Verification(models.TextChoices):
        NONE = "", "Not verified"
        EMAIL_LINK = "email_link", "Emailed one-time link"
        SIGNED_LINK = "signed_link", "Link signed by the tenant"
        PORTAL_SESSION = "portal_session", "Verified portal session"
        TENANT_ATTESTED = "tenant_attested", "Attested by the tenant's backend"
        STAFF = "staff", "Verified manually by staff"
        NOT_REQUIRED = "not_required", "Not required (CCPA opt-out/limit)"

    OPEN_STATUSES = frozenset(_Status(value) for value in _OPEN)
    CLOSED_STATUSES = frozenset({Status.COMPLETED, Status.REJECTED})

    #: Random public handle used in portal URLs and emails (the pk never leaves the admin/API).
    reference = models.CharField(max_length=32, unique=True, editable=False)
    # Choices come from the kinds table (a callable: adding a kind needs no migration). No
    # database CHECK on the values: the table is the one list of kinds, and every write goes
    # through ``create_privacy_request``, which refuses a kind it does not hold.
    kind = models.CharField(max_length=KIND_MAX_LENGTH, choices=kind_choices)
    regime = models.CharField(max_length=8, choices=Regime.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    # Exempt proof: the request record must name whom it was about (registered handler with
    # a no-op erase; the erasure verifier allows exactly this column).
    subject_key = models.CharField(max_length=SUBJECT_KEY_LENGTH, editable=False)
    #: Fernet token of ``{"identifier": ..., "email": ...}`` under the master key; emptied when
    #: nothing more will be sent to the requester.
    contact_ciphertext = models.BinaryField(default=b"", blank=True, editable=False)
    contact_is_email = models.BooleanField(default=False, editable=False)
    #: What a rectification changes (consents, level, event ids to delete); emptied on close.
    payload = models.JSONField(default=dict, blank=True, editable=False)

    received_at = models.DateTimeField()
    due_at = models.DateTimeField(help_text="Current deadline (after any extension).")
    original_due_at = models.DateTimeField()
    ack_due_at = models.DateTimeField(null=True, blank=True,
                                      help_text="CCPA: acknowledge within 10 business days.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    extended_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    verification_method = models.CharField(max_length=16, choices=Verification.choices,
                                           default=Verification.NONE, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    contact_wiped_at = models.DateTimeField(null=True, blank=True)
    #: Outcome shown to the subject: erasure receipt, export facts, applied flags.
    result = models.JSONField(default=dict, blank=True, editable=False)
    #: An erasure whose receipt's model section still says "model update pending": set
    #: when the receipt is written, cleared when it becomes final
    #: (:mod:`apps.privacy.services.receipts`).
    model_update_pending = models.BooleanField(default=False, editable=False)
    #: Last erasure verification: ``{"checked_at", "hits": [...], "places": [...]}``.
    erasure_check = models.JSONField(default=dict, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_reminder_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: Where the portal that links in emails point to is served, e.g. https://example.com.
    origin = models.CharField(max_length=200, blank=True, editable=False)
    logged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")
    #: The member of the tenant who handles the request (officer workflow).
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="+")
    #: When and by whom a request held in ``awaiting_approval`` was approved.
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["due_at", "pk"]
        indexes = [
            models.Index(fields=["tenant", "subject_key"], name="privacyrequest_subject_idx"),
            models.Index(fields=["tenant", "status", "due_at"], name="privacyrequest_due_idx"),
            models.Index(fields=["tenant"], condition=Q(model_update_pending=True),
                         name="privacyrequest_model_pending"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=_Status.values),
                                   name="privacyrequest_status_valid"),
            models.CheckConstraint(condition=Q(regime__in=_Regime.values),
                                   name="privacyrequest_regime_valid"),
            # An extension always carries its reason (GDPR Art. 12(3), CCPA §7021(b)).
            models.CheckConstraint(condition=Q(extended_at__isnull=True)
                                   | ~Q(extension_reason=""),
                                   name="privacyrequest_extension_has_reason"),
            models.CheckConstraint(condition=~Q(status="rejected") | ~Q(rejection_reason=""),
                                   name="privacyrequest_rejection_has_reason"),
            # Duplicate detection (issue 17): one open request per subject and kind, so five
            # identical portal requests make one request and one job, whichever of them
            # commits first (race-safe on every database; the service answers a duplicate
            # with the open request).
            models.UniqueConstraint(fields=["tenant", "subject_key", "kind"],
                                    condition=Q(status__in=_OPEN),
                                    name="privacyrequest_one_open_per_subject_kind"),
        ]

    def __str__(self) -> str:
        # Never the subject: this string lands in admin logs and messages.
        return f"{self.get_kind_display().split(' (')[0]} request {self.reference[:8]}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_extended(self) -> bool:
        return self.extended_at is not None


class ManualStep(TenantOwnedModel):
    """One item of a request's checklist that a person must tick ("requires input"): the
    steps configured for its kind (tenant setting ``privacy_manual_steps``) or added by an
    officer. A request with an unticked step waits in ``awaiting_approval`` and cannot be
    approved (:mod:`apps.privacy.services.officer`)."""

    privacy_request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE,
                                        related_name="manual_steps")
    label = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["privacy_request", "label"],
                                    name="manualstep_label_once_per_request"),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def is_done(self) -> bool:
        return self.done_at is not None


class RequestNote(TenantOwnedModel):
    """An internal note of the tenant's staff on a request (never shown to the subject).
    Deleted with the request; its text is the staff's own words, not subject data."""

    privacy_request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE,
                                        related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                               on_delete=models.SET_NULL, related_name="+")
    text = models.TextField(max_length=4000)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"note {self.pk} on request {self.privacy_request_id}"


class VerificationChallenge(TenantOwnedModel):
    """One emailed one-time link. Only a SHA-256 of the 192-bit token is stored; it is valid
    for at most 60 minutes, for one successful use and at most 5 wrong attempts."""

    privacy_request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE,
                                        related_name="challenges")
    token_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["token_hash"], name="verificationchallenge_token"),
        ]

    def __str__(self) -> str:
        return f"challenge for request {self.privacy_request_id}"


class SignedLinkUse(TenantOwnedModel):
    """A tenant-signed portal link already spent (its ``jti``, hashed): each link works once.
    Rows are pruned once the link would have expired anyway."""

    jti_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "jti_hash"], name="signedlinkuse_once"),
        ]

    def __str__(self) -> str:
        return f"signed link {self.jti_hash[:8]}…"


class PortalSession(TenantOwnedModel):
    """A subject who proved who they are, for the preference center, "my data" and new
    requests without a second verification. The cookie holds a 256-bit random value; only its
    SHA-256 is stored. Subject data: erased with the subject."""

    token_hash = models.CharField(max_length=64, unique=True)
    subject_key = models.CharField(max_length=SUBJECT_KEY_LENGTH)
    contact_ciphertext = models.BinaryField(default=b"", blank=True)
    contact_is_email = models.BooleanField(default=False)
    verification_method = models.CharField(max_length=16)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["tenant", "subject_key"], name="portalsession_subject")]

    def __str__(self) -> str:
        return f"portal session {self.pk}"


class FulfilmentJob(TenantOwnedModel, DurableJob):
    """Runs one request's handlers. ``progress["steps"]`` holds a checkpoint per handler,
    written in the same transaction as the handler's work, so a redelivered or re-sent job
    resumes after the last finished handler and never does one twice."""

    job_task = "apps.privacy.tasks.fulfil_privacy_request_task"

    privacy_request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE,
                                        related_name="jobs")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["privacy_request"], condition=Q(status__in=["pending", "running"]),
                name="fulfilmentjob_one_active_per_request"),
        ]

    def __str__(self) -> str:
        return f"fulfilment of request {self.privacy_request_id} ({self.status})"


class DataExport(TenantOwnedModel):
    """The zip of an access or portability request, downloadable once through a link whose
    token is stored hashed (and encrypted, so the API and a verified portal session can show
    it until it is used). The file is deleted after 7 days."""

    privacy_request = models.OneToOneField(PrivacyRequest, on_delete=models.CASCADE,
                                           related_name="export")
    path = models.CharField(max_length=300)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    token_ciphertext = models.BinaryField(default=b"", blank=True)
    link_expires_at = models.DateTimeField()
    expires_at = models.DateTimeField(help_text="The file is deleted at this time.")
    downloaded_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export of request {self.privacy_request_id}"


class ErasureTombstone(TenantOwnedModel):
    """An erased subject key: a restored database or model is brought back in line by
    replaying every handler's erase for each tombstone (``manage.py replay_erasures``).
    Exempt proof (GDPR Art. 17(3)(e), Art. 5(2)): kept after the request record is deleted."""

    subject_key = models.CharField(max_length=SUBJECT_KEY_LENGTH)
    privacy_request = models.ForeignKey(PrivacyRequest, null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")
    erased_at = models.DateTimeField()

    class Meta:
        ordering = ["erased_at", "pk"]
        indexes = [models.Index(fields=["tenant", "erased_at"], name="tombstone_erased_idx")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "subject_key", "privacy_request"],
                                    name="erasuretombstone_one_per_request"),
        ]

    def __str__(self) -> str:
        return f"tombstone {self.pk}"


class PortalSettings(TenantOwnedModel):
    """Per-tenant portal configuration: the secret the tenant's backend signs portal links
    with (``/privacy/<slug>/start?token=...``), encrypted under the master key."""

    signing_secret_ciphertext = models.BinaryField(editable=False)
    rotated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "portal settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="portalsettings_one_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"portal settings of tenant {self.tenant_id}"
