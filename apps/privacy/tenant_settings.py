"""The privacy app's tenant settings (``apps.core.tenant_settings``)."""

from __future__ import annotations

from apps.core.tenant_settings import Kind, declare

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
