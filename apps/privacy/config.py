"""The privacy officer's tenant settings, checked here (the declarations in
``apps/privacy/tenant_settings.py`` use these checks, so the form and API that write the
settings share them) and read here through those declarations.

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
from apps.core.tenant_settings import SettingError, get_setting
from apps.privacy.kinds import kind_values
from apps.tenants.models import Tenant

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


def _stored(tenant: Tenant, name: str) -> Any:
    """The tenant's value of the declared setting ``name`` (``apps/privacy/tenant_settings.py``):
    the default when unset, the cleaned value when valid. Unlike ``TenantSetting.read`` an
    invalid stored value is not replaced by the default (which would let every kind through)
    but raises :class:`SettingError`, so that the callers fail closed."""
    setting = get_setting(name)
    if name not in tenant.settings:
        return setting.default
    return setting.validate(tenant.settings[name])


def approval_kinds(tenant: Tenant) -> frozenset[str]:
    """The kinds whose verified requests wait for an officer's approval."""
    try:
        return frozenset(_stored(tenant, APPROVAL_KINDS_SETTING))
    except SettingError:
        logger.error("privacy.invalid_setting setting=%s tenant=%s: every kind needs approval",
                     APPROVAL_KINDS_SETTING, tenant.pk)
        return frozenset(kind_values())


def _all_manual_steps(tenant: Tenant) -> dict[str, list[str]] | None:
    """Every configured checklist, or ``None`` when the stored value is unreadable."""
    try:
        return _stored(tenant, MANUAL_STEPS_SETTING)
    except SettingError:
        logger.error("privacy.invalid_setting setting=%s tenant=%s: ignored; every kind "
                     "needs approval", MANUAL_STEPS_SETTING, tenant.pk)
        return None


def manual_steps(tenant: Tenant, kind: str) -> list[str]:
    """The checklist configured for ``kind`` (empty when none, or when unreadable)."""
    return (_all_manual_steps(tenant) or {}).get(kind, [])


def needs_approval(tenant: Tenant, kind: str) -> bool:
    """Whether a verified ``kind`` request waits in ``awaiting_approval``: its kind is in
    ``privacy_approval_kinds``, it has configured manual steps, or a setting is unreadable."""
    if kind in approval_kinds(tenant):
        return True
    steps = _all_manual_steps(tenant)
    return steps is None or bool(steps.get(kind))
