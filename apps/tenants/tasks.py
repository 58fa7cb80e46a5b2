"""The Celery task class of the whole project (``platform_site/celery.py``): a task whose
first parameter is ``tenant_id`` (STYLE S8) runs inside that tenant's scope
(``apps.tenants.scoping``), entered around the task body and left after it, also when it
raises. Tasks without one (beat sweepers) run unscoped and cross tenants on purpose,
through ``Model.all_tenants``. Model-free at import: Celery loads it before Django."""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

from celery import Task


class TenantScopedTask(Task):
    @cached_property
    def _takes_tenant_id(self) -> bool:
        parameters = list(inspect.signature(self.run).parameters)
        return bool(parameters) and parameters[0] == "tenant_id"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._takes_tenant_id:
            return super().__call__(*args, **kwargs)
        from apps.tenants.scoping import tenant_scope

        tenant_id = args[0] if args else kwargs["tenant_id"]
        with tenant_scope(tenant_id):
            return super().__call__(*args, **kwargs)
