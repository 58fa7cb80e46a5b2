"""The retention app's tenant settings (``apps.core.tenant_settings``)."""

from __future__ import annotations

from apps.core.tenant_settings import Kind, declare

RUN_TIME = declare(
    "retention_run_time", Kind.TIME, default=None, nullable=True, group="Retention",
    help="Daily retention run, HH:MM UTC (empty: the platform's RETENTION_RUN_TIME).")
