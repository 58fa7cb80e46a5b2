"""The events app's tenant settings (``apps.core.tenant_settings``)."""

from __future__ import annotations

from apps.core.tenant_settings import Kind, declare

GROUP = "Events"

UNKNOWN_ITEMS = declare(
    "unknown_items", Kind.CHOICE, default="create", choices=("create", "reject"), group=GROUP,
    help="An event about an item missing from the catalog: create the item, or reject the "
         "event.")
HISTORY_CAP = declare(
    "event_history_cap", Kind.INTEGER, default=200, low=1, high=100_000, group=GROUP,
    help="Events kept per subject (the newest).")
RETENTION_DAYS = declare(
    "event_retention_days", Kind.INTEGER, default=None, nullable=True, low=1, high=36500,
    group=GROUP, help="Older setting: days events are kept; can only shorten the retention "
                      "policy of the events category (empty: the policy alone).")
