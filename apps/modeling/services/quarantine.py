"""Quarantine: subjects whose activity is anomalous for their tenant are left out of training
(issue 15: no single subject can break or steer training).

The training snapshot measures each consenting subject's *volume*, their events of the
tenant's types within the training window, and flags a subject whose volume exceeds every
one of three thresholds (:func:`volume_threshold`):

* ``model_quarantine_multiplier`` times the tenant's median volume (default 500);
* the median plus ``model_quarantine_mad_factor`` (default 10) scaled median absolute
  deviations, so that a tenant whose subjects vary widely does not flag its tail;
* ``model_quarantine_min_events`` (default 500), so that a small tenant's few active
  subjects are never flagged for a handful of events.

A flagged subject gets an open :class:`~apps.modeling.models.SubjectQuarantine` record
(subject key, reason, figures, when) and leaves this snapshot and every later one while the
record is open. A member releases it in the admin (audited).

**Release policy.** A released subject is not quarantined again for the volume they were
released with: they are flagged again only once their volume exceeds twice the volume
recorded when they were last quarantined (and the thresholds). Each quarantine is a new
record, so the history of findings and releases stays readable.

Detection is per snapshot and depends on the tenant's whole distribution: it is not part of
the unlearning oracle (erasing another subject may move the median).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from apps.audit import services as audit
from apps.modeling.config import ModelingSettings
from apps.modeling.models import SubjectQuarantine
from apps.modeling.selectors import list_subject_quarantines
from apps.tenants.models import Tenant

logger = logging.getLogger("modeling.quarantine")

#: A released subject is flagged again only beyond this multiple of the volume they were
#: quarantined for.
RELEASE_MARGIN = 2.0
#: The MAD of a normal distribution is 0.6745 sigma: this scale makes it a sigma estimate.
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class QuarantineFinding:
    """One subject the snapshot found anomalous (not yet stored)."""

    subject_key: str
    reason: str
    figures: dict[str, Any]


@dataclass(frozen=True)
class VolumeThreshold:
    median: float
    mad: float
    threshold: float

    def figures(self, events: int) -> dict[str, Any]:
        return {"events": events, "median": round(self.median, 3), "mad": round(self.mad, 3),
                "threshold": round(self.threshold, 3)}


def volume_threshold(volumes: np.ndarray, cfg: ModelingSettings) -> VolumeThreshold:
    """The volume above which a subject is anomalous, from the volumes (events per subject,
    subjects with at least one) of the tenant's consenting subjects."""
    if not len(volumes):
        return VolumeThreshold(0.0, 0.0, float(cfg.quarantine_min_events))
    median = float(np.median(volumes))
    mad = float(np.median(np.abs(volumes - median)))
    threshold = max(cfg.quarantine_multiplier * median,
                    median + cfg.quarantine_mad_factor * MAD_SCALE * mad,
                    float(cfg.quarantine_min_events))
    return VolumeThreshold(median, mad, threshold)


def find_anomalous_subjects(
    keys: Sequence[str], volumes: np.ndarray, cfg: ModelingSettings, *,
    released: dict[str, int], already: Iterable[str] = (),
) -> tuple[list[QuarantineFinding], VolumeThreshold]:
    """Pure: the subjects of ``keys`` (aligned with ``volumes``) whose volume is anomalous,
    less those ``already`` quarantined and the released ones still within the release
    margin (``released``: subject key -> the volume they were last quarantined for)."""
    present = volumes > 0
    limit = volume_threshold(volumes[present].astype(np.float64), cfg)
    skip = set(already)
    findings = []
    for index in np.flatnonzero(present & (volumes > limit.threshold)).tolist():
        key, events = keys[index], int(volumes[index])
        if key in skip:
            continue
        if key in released and events <= RELEASE_MARGIN * released[key]:
            continue
        findings.append(QuarantineFinding(key, SubjectQuarantine.Reason.VOLUME,
                                          limit.figures(events)))
    return findings, limit


# --- Reads -----------------------------------------------------------------------------------


def quarantined_subject_keys(*, tenant: Tenant) -> set[str]:
    """Keys of the tenant's subjects under an open quarantine (left out of training)."""
    return set(list_subject_quarantines(tenant=tenant, open=True)
               .values_list("subject_key", flat=True))


def released_volumes(*, tenant: Tenant) -> dict[str, int]:
    """Subject key -> the volume of their latest released quarantine (release policy)."""
    volumes: dict[str, int] = {}
    rows = (list_subject_quarantines(tenant=tenant, open=False)
            .order_by("detected_at", "pk").values_list("subject_key", "figures"))
    for key, figures in rows:
        volumes[key] = int((figures or {}).get("events", 0))
    return volumes


# --- Writes ----------------------------------------------------------------------------------


@transaction.atomic
def quarantine_subjects(*, tenant: Tenant, findings: Sequence[QuarantineFinding]
                        ) -> list[SubjectQuarantine]:
    """Store the snapshot's findings as open quarantine records, each audited. Idempotent:
    a subject already under an open quarantine is skipped (one open record per subject, a
    database constraint). Returns the records created."""
    if not findings:
        return []
    open_keys = quarantined_subject_keys(tenant=tenant)
    now = timezone.now()
    created = []
    for finding in findings:
        if finding.subject_key in open_keys:
            continue
        record = SubjectQuarantine.objects.create(
            tenant=tenant, subject_key=finding.subject_key, reason=finding.reason,
            figures=finding.figures, detected_at=now)
        audit.record(tenant, "modeling.subject_quarantined", None, record,
                     {"reason": finding.reason, **finding.figures},
                     subject_key=finding.subject_key)
        open_keys.add(finding.subject_key)
        created.append(record)
    logger.info("modeling.subjects_quarantined tenant_id=%s count=%s", tenant.pk, len(created))
    return created


@transaction.atomic
def release_subject(*, tenant: Tenant, quarantine: SubjectQuarantine, actor: Any = None
                    ) -> SubjectQuarantine:
    """Release an open quarantine: the subject is trained on again from the next training
    (and not quarantined again until their volume doubles, see the module docstring).
    Idempotent: releasing a released record changes nothing. Audited."""
    record = (SubjectQuarantine.objects.for_tenant(tenant).select_for_update()
              .get(pk=quarantine.pk))
    if record.released_at is not None:
        return record
    record.released_at = timezone.now()
    record.save(update_fields=["released_at", "updated_at"])
    audit.record(tenant, "modeling.subject_released", actor, record,
                 {"reason": record.reason, "events": record.figures.get("events")},
                 subject_key=record.subject_key)
    return record
