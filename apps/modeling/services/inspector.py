"""The recommendation inspector (admin): what one subject gets and why, for a growth
engineer. The subject's raw id is pseudonymized on arrival, exactly as ingestion does
(``pseudonymize``: HMAC under the tenant's secret), and goes no further: it is not stored,
not logged and not in the audit entry, which names the subject by the audit token of their
key (deleted at their erasure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from apps.audit import services as audit
from apps.consent.selectors import get_subject_consent
from apps.modeling.models import ModelVersion
from apps.modeling.services.serving import Recommendation, recommend_for_subject
from apps.modeling.services.training import get_active_version
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize

INSPECTOR_TARGET = ("modeling.inspector", "")


@dataclass(frozen=True)
class Inspection:
    level: str                      # effective level: off | session | full
    chosen_level: str | None
    restricted: bool
    objected: bool
    purposes: list[dict[str, Any]]  # per purpose: key, name, chosen, granted, allowed, ...
    recommendation: Recommendation
    model_version: ModelVersion | None  # the version in service (None: none)

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.recommendation.items


@transaction.atomic
def inspect_subject(*, tenant: Tenant, external_id: str, actor: Any, n: int = 10
                    ) -> Inspection:
    """Consent state, level, recommendations with explanations and the model version for
    the subject ``external_id`` of ``tenant``, and an audit entry of the access
    (``modeling.subject_inspected``) in the same transaction. ``ApplicationError``
    ``invalid_subject`` for an empty or over-long id."""
    subject_key = pseudonymize(tenant, external_id)
    detail = get_subject_consent(tenant=tenant, subject_key=subject_key, history_limit=0)
    recommendation = recommend_for_subject(tenant=tenant, subject_key=subject_key, n=n,
                                           explain=True)
    active = get_active_version(tenant=tenant)
    audit.record(tenant, "modeling.subject_inspected", actor, INSPECTOR_TARGET,
                 {"personalized": recommendation.personalized,
                  "reason": recommendation.reason,
                  "model_version": recommendation.model_version,
                  "items": len(recommendation.items)},
                 subject_key=subject_key)
    view = detail.view
    purposes = [{"key": p.purpose.key, "name": p.purpose.name, "chosen": p.chosen,
                 "granted": p.granted, "allowed": p.allowed, "source": p.source,
                 "at": p.at, "expires_at": p.expires_at, "needs_renewal": p.needs_renewal}
                for p in detail.purposes]
    return Inspection(level=view.level, chosen_level=detail.chosen_level,
                      restricted=view.restricted, objected=view.objected, purposes=purposes,
                      recommendation=recommendation, model_version=active)
