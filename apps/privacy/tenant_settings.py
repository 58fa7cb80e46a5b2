"""The privacy app's tenant settings (``apps.core.tenant_settings``)."""

from __future__ import annotations

from apps.core.tenant_settings import Kind, declare
from apps.privacy import config
from apps.privacy.i18n import DEFAULT_LANGUAGE_SETTING, FALLBACK, PORTAL_LANGUAGES
from apps.privacy.kinds import kind_values

GROUP = "Privacy requests"

HOLIDAYS = declare(
    "privacy_holidays", Kind.DATES, default=[], group=GROUP,
    help="Holidays not counted as business days in request deadlines (YYYY-MM-DD).")
AT_RISK_DAYS = declare(
    "privacy_at_risk_days", Kind.INTEGER, default=7, low=0, high=365, group=GROUP,
    help="An open request with this many days left or fewer is shown as at risk.")
UNVERIFIED_REJECT_DAYS = declare(
    "privacy_unverified_reject_days", Kind.INTEGER, default=30, low=1, high=365, group=GROUP,
    help="Portal requests never verified are rejected after this many days.")
PORTAL_IDENTIFIER = declare(
    "privacy_portal_identifier", Kind.CHOICE, default="email", choices=("email", "account"),
    group=GROUP, help="What the portal asks a subject for: an email address, or an account "
                      "id only (signed links from the tenant's site).")
APPROVAL_KINDS = declare(
    config.APPROVAL_KINDS_SETTING, Kind.CHOICES, default=[], choices=kind_values, group=GROUP,
    help="Kinds whose verified requests wait in awaiting_approval until an owner or admin "
         "approves or denies them.")
MANUAL_STEPS = declare(
    config.MANUAL_STEPS_SETTING, Kind.MAPPING, default={}, check=config.clean_manual_steps,
    group=GROUP, help='Checklists per kind, e.g. {"erasure": ["Check the legal hold list"]}: '
                      "a request of that kind waits until every step is ticked and it is "
                      "approved.")
PORTAL_LANGUAGE = declare(
    DEFAULT_LANGUAGE_SETTING, Kind.CHOICE, default=FALLBACK,
    choices=[code for code, _ in PORTAL_LANGUAGES],
    group=GROUP, help="The portal's and subject emails' language when the visitor's browser "
                      "asks for none of en, de, fr, es.")
