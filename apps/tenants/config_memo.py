"""A per-process memo of a tenant's slowly changing configuration, exact across processes.

Every ingested batch reads the tenant's event schema, purposes and events retention period:
three queries and ~4 ms of ORM work per request for data that changes a few times a year.
``Tenant.config_revision`` is a random UUID that changes, in the same transaction, with any
change to a model registered here (``watch_tenant_config``). A value memoized under one
revision is served only to a caller whose ``Tenant`` row carries that same revision, and the
API loads the row afresh for every request (with the API key): a change committed before a
request is seen by that request, in every process.

Why this is exact:
- the revision is read *before* the data it labels (on a miss), so a memo never pairs a new
  revision with older data (READ COMMITTED: the later statement sees every earlier commit);
- a change bumps the revision inside its own transaction: what a rolled-back change let its
  own transaction memoize sits under a revision no one else will ever hold;
- a change also forgets the process's memo of that tenant at once, so a ``Tenant`` instance
  loaded before it (in this process) reloads instead of being served the old value.
A ``Tenant`` instance loaded before a change in *another* process keeps the configuration
of when it was loaded; requests and tasks load the row when they start.

Writes that bypass model signals (``QuerySet.update``, ``bulk_create``) on watched models must
call :func:`touch_tenant_config` themselves; tenant provisioning is the only one today, and a
new tenant has no memo yet.

Memoized values are shared: callers must not mutate them (ingestion's item memo only ever
adds an item's immutable ``external_id -> pk`` after its row is committed).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save

from apps.tenants.models import Tenant

T = TypeVar("T")

_memo: dict[tuple[int, str], tuple[uuid.UUID, Any]] = {}
_lock = threading.Lock()


def memoize_tenant_config(tenant: Tenant, name: str, load: Callable[[], T]) -> T:
    """``load()``, or the value memoized for ``tenant``'s current ``config_revision``."""
    key = (tenant.pk, name)
    entry = _memo.get(key)
    if entry is not None and entry[0] == tenant.config_revision:
        return entry[1]
    revision = (Tenant.objects.filter(pk=tenant.pk)
                .values_list("config_revision", flat=True).first())
    value = load()
    if revision is not None:
        with _lock:
            _memo[key] = (revision, value)
    return value


def forget_tenant_config(tenant_id: int) -> None:
    """Drop this process's memo of one tenant."""
    with _lock:
        for key in [k for k in _memo if k[0] == tenant_id]:
            del _memo[key]


def touch_tenant_config(tenant_id: int) -> None:
    """The tenant's configuration changed: a new revision (in the caller's transaction)."""
    Tenant.objects.filter(pk=tenant_id).update(config_revision=uuid.uuid4())
    forget_tenant_config(tenant_id)
    transaction.on_commit(lambda: forget_tenant_config(tenant_id))


def _on_change(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    tenant_id = getattr(instance, "tenant_id", None)
    if tenant_id is not None and not kwargs.get("raw"):
        touch_tenant_config(tenant_id)


def _on_m2m_change(sender: type[Model], instance: Model, action: str, **kwargs: Any) -> None:
    if action in {"post_add", "post_remove", "post_clear"}:
        _on_change(sender, instance)


def watch_tenant_config(model: type[Model], *, m2m: tuple[Any, ...] = (),
                        saves: bool = True) -> None:
    """Changes to ``model`` rows (saved unless ``saves=False``, deleted; and the ``m2m``
    relations' ``through`` tables) change their tenant's configuration revision."""
    uid = f"tenant-config:{model._meta.label}"
    if saves:
        post_save.connect(_on_change, sender=model, dispatch_uid=uid + ":save")
    post_delete.connect(_on_change, sender=model, dispatch_uid=uid + ":delete")
    for through in m2m:
        m2m_changed.connect(_on_m2m_change, sender=through, dispatch_uid=uid + ":m2m")
