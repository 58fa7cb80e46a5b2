"""Model registry, training runs, serving state and the differential-privacy budget ledger.

Subject keys live inside model artifacts (the id maps), which the erasure hook rewrites or
destroys (see ``services/erasure.py``), and in one table: :class:`SubjectQuarantine`, the
subjects left out of training for anomalous activity (declared in ``subject_data.py``).
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from apps.core.jobs import DurableJob
from apps.modeling.recommenders import algorithm_choices
from apps.modeling.recommenders.base import NAME_MAX_LENGTH
from apps.tenants.scoping import TenantOwnedModel


class TrainingRun(TenantOwnedModel, DurableJob):
    """One training of one tenant's model: a durable job (DESIGN "Tasks"). The worker task
    claims it, records progress per ALS iteration, and links the version it produced."""

    class Reason(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled (beat)"
        MANUAL = "manual", "Manual"
        COMMAND = "command", "manage.py train_models"
        ERASURE = "erasure", "Erasure pending"
        WITHDRAWAL = "withdrawal", "Consent withdrawn"
        RETENTION = "retention", "Data deleted by retention"
        SUBJECT_CONTROL = "subject_control", "Level, objection or restriction"
        RECTIFICATION = "rectification", "Interactions rectified"

    job_task: ClassVar[str] = "apps.modeling.tasks.train_model_task"

    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.MANUAL)
    log = models.TextField(blank=True, help_text="What the run did, stage by stage.")
    model_version = models.OneToOneField(
        "modeling.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["tenant", "status"], name="trainingrun_tenant_status")]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.status})"


class ModelVersion(TenantOwnedModel):
    """A trained model: parameters, data statistics, metrics, consent-snapshot time and the
    artifact (a checksummed ``.npz`` under the tenant's storage prefix)."""

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate (not activated)"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    number = models.PositiveIntegerField(help_text="Per-tenant version number.")
    algorithm = models.CharField(max_length=NAME_MAX_LENGTH, choices=algorithm_choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    params = models.JSONField(default=dict, blank=True)
    data_stats = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    search = models.JSONField(default=list, blank=True,
                              help_text="Candidates tried and their validation NDCG@10.")
    timings = models.JSONField(default=dict, blank=True)
    consent_snapshot_at = models.DateTimeField()
    artifact_path = models.CharField(max_length=300, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_bytes = models.PositiveBigIntegerField(default=0)
    artifact_destroyed_at = models.DateTimeField(null=True, blank=True)
    #: Incremented whenever the artifact is rewritten in place (an erasure patch), so that
    #: every serving process reloads it.
    revision = models.PositiveIntegerField(default=0)
    erased_subjects = models.PositiveIntegerField(
        default=0, help_text="Subjects removed from this model since it was trained (erasure, "
        "level, objection, restriction, rectification); their remaining influence goes "
        "with the retrain that replaces it.")
    #: Lineage of subjects patched out of the artifact by a subject control (level,
    #: objection, restriction, rectification) while it is stored: the version was trained
    #: on them, and an erasure's receipt and an access export must still say so. Emptied
    #: when the artifact is destroyed, and a subject's key by their erasure.
    removed_subject_keys = models.JSONField(default=list, blank=True)
    activation_note = models.CharField(max_length=300, blank=True)
    activation_decision = models.JSONField(
        default=dict, blank=True,
        help_text="Champion/challenger at registration: the rule applied, the active "
        "version re-scored on this version's hold-out, both NDCG@10 figures, the hold-out "
        "size and whether this version was activated.")
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="modelversion_one_number"),
            models.UniqueConstraint(fields=["tenant"], condition=models.Q(status="active"),
                                    name="modelversion_one_active"),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="modelversion_tenant_status")]

    def __str__(self) -> str:
        return f"v{self.number} ({self.algorithm}, {self.status})"

    @property
    def ndcg(self) -> float | None:
        value = (self.metrics.get("model") or {}).get("ndcg@10")
        return None if value is None else float(value)

    @property
    def has_artifact(self) -> bool:
        return bool(self.artifact_path) and self.artifact_destroyed_at is None


class ServingState(TenantOwnedModel):
    """One row per tenant: what serving checks on every request and what the debounced
    retrain looks at. API-key authentication reads it with the key, in the same query
    (``tenant.serving_state``). ``catalog_stamp`` moves whenever the catalog changes, so
    serving processes reload item flags (active, categories) without querying items."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.PROTECT,
                                  related_name="serving_state")
    active_version = models.ForeignKey(ModelVersion, null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+")
    active_revision = models.PositiveIntegerField(default=0)
    catalog_stamp = models.PositiveBigIntegerField(default=0)
    retrain_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="An erasure or a withdrawal is pending: a retrain "
        "starts once the debounce delay has passed.")
    retrain_reason = models.CharField(max_length=16, blank=True)

    def __str__(self) -> str:
        return f"serving state of tenant {self.tenant_id}"


class PrivacyBudgetEntry(TenantOwnedModel):
    """The per-tenant privacy-budget ledger: one row per differentially private release,
    or per reuse of one (``reuse_of``, ε 0). Append-only; the released (noisy) values are
    kept with the row, since serving the release again costs no further privacy
    (post-processing)."""

    class Kind(models.TextChoices):
        POPULAR_ITEMS = "popular_items", "Popular items (noisy counts)"

    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.POPULAR_ITEMS)
    epsilon = models.FloatField()
    delta = models.FloatField(default=0.0)
    mechanism = models.CharField(max_length=100)
    contribution_bound = models.PositiveIntegerField(
        help_text="Distinct items counted per subject at most (the sensitivity).")
    noise_scale = models.FloatField()
    subjects = models.PositiveIntegerField(default=0)
    categories = models.PositiveIntegerField(default=0, help_text="Items counted.")
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True,
                                      on_delete=models.SET_NULL, related_name="+")
    released = models.JSONField(default=list, blank=True,
                                help_text="[[item pk, noisy count], ...] best first.")
    data_fingerprint = models.CharField(
        max_length=64, blank=True, default="",
        help_text="Keyed hash of the release's exact input (catalog, ε, bound, bounded "
        "counts): an equal one is served again instead of drawn again.")
    reuse_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Set when this row serves an earlier release again (ε 0).")

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "privacy budget ledger"
        indexes = [models.Index(fields=["tenant", "kind", "-id"], name="budget_tenant_kind")]

    def __str__(self) -> str:
        return f"{self.kind} ε={self.epsilon}"


class SubjectQuarantine(TenantOwnedModel):
    """A subject whose activity is anomalous for the tenant (issue 15: no single subject can
    break or steer training), found when a training snapshot is taken. While the record is
    open the subject's events are left out of training; a member releases it in the admin.
    A released record stays (what was found, when, and its release) until the subject's
    data is erased or removed with inactive subjects."""

    class Reason(models.TextChoices):
        VOLUME = "volume", "Event volume far beyond the tenant's distribution"

    subject_key = models.CharField(max_length=64)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    figures = models.JSONField(
        default=dict, blank=True, help_text="What was measured: the subject's events in the "
        "training window, the tenant's median and MAD, and the threshold crossed.")
    detected_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "subject_key"],
                                    condition=models.Q(released_at__isnull=True),
                                    name="subjectquarantine_one_open_per_subject"),
        ]
        indexes = [models.Index(fields=["tenant", "subject_key"],
                                name="subjectquarantine_subject_idx")]

    def __str__(self) -> str:
        state = "released" if self.released_at else "quarantined"
        return f"{self.subject_key[:12]}… {state} ({self.reason})"

    @property
    def is_open(self) -> bool:
        return self.released_at is None
