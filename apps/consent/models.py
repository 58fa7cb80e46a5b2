"""Consent: purposes, privacy-notice versions, the append-only ledger and current state.

Four tables, each with one job:

* :class:`Purpose` and :class:`PrivacyNotice` are the tenant's configuration (edited in the
  admin, captured by django-auditlog).
* :class:`ConsentRecord` is the ledger: one row per decision, never updated. It is the proof
  of what a subject agreed to, against which notice, when and through which channel.
* :class:`ConsentState` (one row per subject and purpose) and :class:`SubjectState` (one row
  per subject: level, restriction, objection) are the current state, written in the same
  transaction as the ledger so a check is one indexed lookup instead of a ledger scan.
"""

from __future__ import annotations

from typing import Any, Self

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.tenants.scoping import TenantOwnedModel, TenantQuerySet

PURPOSE_KEY_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9_]{0,63}$", "A purpose key is lowercase letters, digits and underscores."
)
METHOD_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9_.:\-]{0,64}$",
    "A collection method is a short label (letters, digits, '_', '.', ':', '-').",
)

#: The purpose the personalization level depends on (DESIGN "The path of one event").
PERSONALIZATION = "personalization"
SUBJECT_KEY_LENGTH = 64


class Source(models.TextChoices):
    """The channel a decision came through (the ledger's ``source``)."""

    API = "api", "API"
    PORTAL = "portal", "Privacy portal"
    GPC = "gpc", "Global Privacy Control"
    ADMIN = "admin", "Admin"
    IMPORT = "import", "Import"


class Level(models.TextChoices):
    """The subject's personalization dial."""

    OFF = "off", "Off: no personalization, nothing stored"
    SESSION = "session", "Session: only items the client sends, nothing stored"
    FULL = "full", "Full: history stored and used for training"


class Purpose(TenantOwnedModel):
    """Something the tenant wants to do with subject data, and the legal basis for it."""

    class LegalBasis(models.TextChoices):
        CONSENT = "consent", "Consent (GDPR Art. 6(1)(a))"
        LEGITIMATE_INTEREST = "legitimate_interest", "Legitimate interest (Art. 6(1)(f))"
        CONTRACT = "contract", "Contract (Art. 6(1)(b))"
        LEGAL_OBLIGATION = "legal_obligation", "Legal obligation (Art. 6(1)(c))"

    key = models.CharField(max_length=64, validators=[PURPOSE_KEY_VALIDATOR],
                           help_text="Stable identifier used by the API, e.g. 'personalization'.")
    name = models.CharField(max_length=200)
    description = models.TextField(help_text="Plain-language text shown to subjects.")
    legal_basis = models.CharField(max_length=32, choices=LegalBasis.choices,
                                   default=LegalBasis.CONSENT)
    is_sale_or_sharing = models.BooleanField(
        default=False, help_text="Sale or sharing under CCPA (cross-context behavioural "
                                 "advertising): opted out by Global Privacy Control.")
    uses_sensitive_data = models.BooleanField(
        default=False, help_text="Uses sensitive personal information (CCPA 'limit' right).")
    aggregate_only = models.BooleanField(
        default=False, help_text="Data is used only in aggregate, never per subject.")
    default_granted = models.BooleanField(
        default=False, help_text="State for subjects who never chose. Always off for consent.")
    renewal_required_from = models.ForeignKey(
        "consent.PrivacyNotice", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
        help_text="Consents given against notices older than this one read as not given "
                  "until the subject renews them.")

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="purpose_unique_key"),
            # GDPR Art. 4(11)/7: consent is opt-in, never a default.
            models.CheckConstraint(
                condition=~Q(legal_basis="consent") | Q(default_granted=False),
                name="purpose_consent_defaults_off",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class PrivacyNotice(TenantOwnedModel):
    """One version of the privacy notice text a subject was shown. Consents cite a version."""

    version = models.CharField(max_length=64, help_text="Label clients send, e.g. '2025-01'.")
    text = models.TextField()
    effective_at = models.DateTimeField(default=timezone.now)
    purposes = models.ManyToManyField(Purpose, related_name="notices", blank=False,
                                      help_text="The purposes this text describes.")

    class Meta:
        ordering = ["-effective_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version"],
                                    name="privacynotice_unique_version"),
        ]

    def __str__(self) -> str:
        return self.version


class ConsentRecordQuerySet(TenantQuerySet):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("The consent ledger is append-only: rows are never updated.")

    def chronological(self) -> Self:
        return self.order_by("captured_at", "id")


class ConsentRecord(TenantOwnedModel):
    """The ledger: one decision of one subject. Append-only (no update path; deleted only by
    erasure). ``kind`` says what was decided: a purpose (``granted``), the level (``level``),
    a restriction (Art. 18, ``granted`` = restricted) or an objection (Art. 21)."""

    class Kind(models.TextChoices):
        PURPOSE = "purpose", "Purpose"
        LEVEL = "level", "Personalization level"
        RESTRICTION = "restriction", "Restriction (Art. 18)"
        OBJECTION = "objection", "Objection (Art. 21)"

    subject_key = models.CharField(max_length=SUBJECT_KEY_LENGTH)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PURPOSE)
    purpose = models.ForeignKey(Purpose, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    granted = models.BooleanField(null=True, blank=True)
    level = models.CharField(max_length=8, choices=Level.choices, blank=True)
    notice = models.ForeignKey(PrivacyNotice, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+")
    source = models.CharField(max_length=8, choices=Source.choices)
    method = models.CharField(max_length=64, blank=True, validators=[METHOD_VALIDATOR],
                              help_text="How it was collected, e.g. 'banner'.")
    captured_at = models.DateTimeField()

    all_tenants = ConsentRecordQuerySet.as_all_tenants_manager()
    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["captured_at", "id"]
        indexes = [
            models.Index(fields=["tenant", "subject_key", "captured_at"],
                         name="consentrecord_subject_idx"),
            models.Index(fields=["tenant", "purpose", "captured_at"],
                         name="consentrecord_purpose_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    (Q(kind="purpose") & Q(purpose__isnull=False) & Q(granted__isnull=False))
                    | (Q(kind="level") & Q(level__in=Level.values))
                    | (Q(kind__in=["restriction", "objection"]) & Q(granted__isnull=False))
                ),
                name="consentrecord_kind_fields",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A guard, not logic (STYLE S2): the ledger is proof, so an existing row is immutable.
        if not self._state.adding:
            raise TypeError("The consent ledger is append-only: rows are never updated.")
        super().save(*args, **kwargs)


class ConsentState(TenantOwnedModel):
    """The current decision per (subject, purpose): a copy of the newest ledger row for it,
    written in the same transaction. Absent means the subject never chose (the purpose's
    default applies)."""

    # No index on tenant alone: the unique (tenant, ...) index serves every tenant lookup,
    # and a second one would let a planner with stale statistics (a new tenant's rows) probe
    # it, scanning the tenant's rows, for each key of a batch (apps.core.db).
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    subject_key = models.CharField(max_length=SUBJECT_KEY_LENGTH)
    # Not indexed alone either, for the same reason (a purpose's rows are all its subjects).
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="+",
                                db_index=False)
    granted = models.BooleanField()
    notice = models.ForeignKey(PrivacyNotice, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+")
    source = models.CharField(max_length=8, choices=Source.choices)
    method = models.CharField(max_length=64, blank=True)
    captured_at = models.DateTimeField()

    class Meta:
        ordering = ["subject_key", "purpose_id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "subject_key", "purpose"],
                                    name="consentstate_one_per_purpose"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose_id}={'granted' if self.granted else 'withdrawn'}"


class SubjectState(TenantOwnedModel):
    """Per-subject dial and flags. Its row is also the lock that serializes concurrent
    updates for one subject (``select_for_update``), so the ledger order is the commit order."""

    # No index on tenant alone: the unique (tenant, ...) index serves every tenant lookup,
    # and a second one would let a planner with stale statistics (a new tenant's rows) probe
    # it, scanning the tenant's rows, for each key of a batch (apps.core.db).
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    subject_key = models.CharField(max_length=SUBJECT_KEY_LENGTH)
    level = models.CharField(max_length=8, choices=Level.choices, blank=True,
                             help_text="The subject's chosen level; blank when never chosen.")
    restricted = models.BooleanField(default=False, help_text="GDPR Art. 18 restriction.")
    objected = models.BooleanField(default=False, help_text="GDPR Art. 21 objection.")
    objected_at = models.DateTimeField(null=True, blank=True)
    do_not_ask_until = models.DateTimeField(
        null=True, blank=True, help_text="After an objection, the subject may not be asked "
                                         "for personalization consent again before this.")

    class Meta:
        ordering = ["subject_key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "subject_key"],
                                    name="subjectstate_one_per_subject"),
            models.CheckConstraint(condition=Q(level__in=["", *Level.values]),
                                   name="subjectstate_level_valid"),
        ]

    def __str__(self) -> str:
        return f"subject {self.subject_key[:8]}…"
