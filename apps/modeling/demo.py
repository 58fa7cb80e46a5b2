"""Demo data for ``make run``: the demo tenant gets its first model at once."""

from __future__ import annotations

from typing import TextIO

from apps.tenants.models import Tenant


def seed_demo_model(tenant: Tenant, out: TextIO) -> None:
    """Ask for a training run (the embedded worker runs it) when the tenant has events but
    no model yet. Idempotent: a tenant with a version or a pending run gets nothing new."""
    from apps.events.selectors import list_events
    from apps.modeling.models import ModelVersion
    from apps.modeling.services import request_training

    if ModelVersion.objects.for_tenant(tenant).exists() or not list_events(
            tenant=tenant).exists():
        out.write("modeling: nothing to train\n")
        return
    run = request_training(tenant=tenant, reason="manual")
    out.write(f"modeling: training run {run.pk} requested (the worker trains the first model)\n")
