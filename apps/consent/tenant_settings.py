"""The consent app's tenant settings (``apps.core.tenant_settings``)."""

from __future__ import annotations

from apps.core.tenant_settings import Kind, declare

GROUP = "Consent"

EXPIRY_MONTHS = declare(
    "consent_expiry_months", Kind.INTEGER, default=13, low=0, high=120, group=GROUP,
    help="Months after which a consent reads as not given and is asked again (0: never "
         "expires; 13 follows the CNIL's guidance).")
OBJECTION_QUIET_DAYS = declare(
    "objection_quiet_days", Kind.INTEGER, default=365, low=0, high=3650, group=GROUP,
    help="Days after an objection during which the subject is not asked again.")
