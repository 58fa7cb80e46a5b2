"""The privacy officer's tenant settings, read and checked in one place (so that a settings
registry can name these checks, and the form and API that write the settings share them).

* ``privacy_approval_kinds``: list of kind names (default ``[]``). A verified request of such
  a kind waits in ``awaiting_approval`` until an owner or admin approves or denies it.
* ``privacy_manual_steps``: ``{kind: [step label, ...]}`` (default ``{}``). A verified
  request of such a kind gets these steps as a checklist ("requires input") and waits in
  ``awaiting_approval`` until every step is ticked and the request is approved.

Reading never fails a request: a stored value that does not pass its check (written before
the check existed, or by hand) fails *closed*: every kind then waits for approval, and the
error is logged, so nothing is fulfilled that an officer meant to look at first.
"""

from __future__ import annotations

import logging
from typing import Any

from apps.core.exceptions import ApplicationError
from apps.privacy.kinds import kind_values
from apps.tenants.models import Tenant
from apps.tenants.services import tenant_setting

logger = logging.getLogger("privacy.config")

APPROVAL_KINDS_SETTING = "privacy_approval_kinds"
MANUAL_STEPS_SETTING = "privacy_manual_steps"
MAX_STEPS = 20
MAX_STEP_LABEL = 200


def _invalid(setting: str, message: str, **details: Any) -> ApplicationError:
    return ApplicationError(message, code="invalid_setting",
                            details={"field": setting, **details})


def clean_approval_kinds(value: Any) -> list[str]:
    """``privacy_approval_kinds``: a list of distinct kind names from the kinds table."""
    allowed = kind_values()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(APPROVAL_KINDS_SETTING, "A list of request kinds.", allowed=allowed)
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _invalid(APPROVAL_KINDS_SETTING, f"Unknown kinds: {', '.join(unknown)}.",
                       allowed=allowed)
    return sorted(set(value), key=allowed.index)


def clean_manual_steps(value: Any) -> dict[str, list[str]]:
    """``privacy_manual_steps``: kind name -> list of distinct, non-empty step labels
    (at most :data:`MAX_STEPS`, each at most :data:`MAX_STEP_LABEL` characters)."""
    allowed = kind_values()
    if not isinstance(value, dict):
        raise _invalid(MANUAL_STEPS_SETTING, "An object of kind: [step labels].",
                       allowed=allowed)
    cleaned: dict[str, list[str]] = {}
    for kind, steps in value.items():
        if kind not in allowed:
            raise _invalid(MANUAL_STEPS_SETTING, f"Unknown kind: {kind}.", allowed=allowed)
        if (not isinstance(steps, list) or len(steps) > MAX_STEPS
                or not all(isinstance(s, str) and 0 < len(s.strip()) <= MAX_STEP_LABEL
                           for s in steps)):
            raise _invalid(MANUAL_STEPS_SETTING,
                           f"Steps of {kind}: a list of at most {MAX_STEPS} labels of 1 to "
                           f"{MAX_STEP_LABEL} characters.")
        labels = list(dict.fromkeys(s.strip() for s in steps))
        if labels:
            cleaned[kind] = labels
    return cleaned


#: For a settings registry: setting name -> (default, check).
SETTINGS = {
    APPROVAL_KINDS_SETTING: ([], clean_approval_kinds),
    MANUAL_STEPS_SETTING: ({}, clean_manual_steps),
}


def approval_kinds(tenant: Tenant) -> frozenset[str]:
    """The kinds whose verified requests wait for an officer's approval."""
    raw = tenant_setting(tenant, APPROVAL_KINDS_SETTING, [])
    try:
        return frozenset(clean_approval_kinds(raw))
    except ApplicationError:
        logger.error("privacy.invalid_setting setting=%s tenant=%s: every kind needs approval",
                     APPROVAL_KINDS_SETTING, tenant.pk)
        return frozenset(kind_values())


def manual_steps(tenant: Tenant, kind: str) -> list[str]:
    """The checklist configured for ``kind`` (empty when none)."""
    raw = tenant_setting(tenant, MANUAL_STEPS_SETTING, {})
    try:
        return clean_manual_steps(raw).get(kind, [])
    except ApplicationError:
        logger.error("privacy.invalid_setting setting=%s tenant=%s: ignored; every kind "
                     "needs approval", MANUAL_STEPS_SETTING, tenant.pk)
        return []


def needs_approval(tenant: Tenant, kind: str) -> bool:
    """Whether a verified ``kind`` request waits in ``awaiting_approval``: its kind is in
    ``privacy_approval_kinds``, it has configured manual steps, or a setting is unreadable."""
    if kind in approval_kinds(tenant) or manual_steps(tenant, kind):
        return True
    raw = tenant_setting(tenant, MANUAL_STEPS_SETTING, {})
    try:
        clean_manual_steps(raw)
    except ApplicationError:
        return True
    return False
