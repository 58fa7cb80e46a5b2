"""Tenant scoping that fails closed (DESIGN "Tenant scoping", STYLE S4-S6).

The scope is a :class:`~contextvars.ContextVar` holding the tenants the running code may
read. It is set once per unit of work, never by the code that queries:

* an API request: :class:`apps.tenants.apis.TenantApi`, after DRF authentication resolved
  the key's tenant, until the response is finalized (also on an exception);
* an admin request: :class:`apps.tenants.middleware.AdminTenantScopeMiddleware`, the
  member's tenants (a superuser has no scope; the admin mixin uses ``all_tenants``);
* a Celery task: :class:`apps.tenants.tasks.TenantScopedTask`, the Celery app's task
  class, around every task whose first parameter is ``tenant_id`` (STYLE S8).

Every tenant-owned model inherits :class:`TenantOwnedModel` and has two managers:

``Model.objects`` (:class:`TenantManager`)
    The default way in. Outside a scope a read raises :class:`TenantScopeRequired`; inside
    one it is filtered to the scoped tenants. ``objects.for_tenant(t)`` names its tenant and
    is valid everywhere, except for a tenant outside the current scope
    (:class:`TenantScopeConflict`). Writes that carry their tenant (``create(tenant=...)``,
    ``bulk_create`` of rows holding theirs) need no scope, so services that are handed a
    tenant work the same in a request, a task, a command or a test.

``Model.all_tenants`` (:class:`AllTenantsManager`)
    The deliberate cross-tenant bypass, for the few places where crossing tenants is the
    point (superuser admin, beat sweepers, ops commands, API-key lookup, the erasure
    verifier's scan). Each use says why in a comment.

Django's own machinery reads ``Model._default_manager`` (unique and constraint checks in
``full_clean()``, model-form choices, the admin changelist, reverse related managers,
``dumpdata``, django-auditlog) or ``Model._base_manager`` (forward relations, deletion
collectors, ``save()``, ``refresh_from_db()``). Those act on rows already in hand or
narrowed by the caller, so both must be unscoped: ``Meta.default_manager_name`` names
``all_tenants``, which is also declared first. Django inherits that name only into
subclasses that declare no manager of their own, so a model with its own queryset
declares both managers, ``all_tenants`` first::

    all_tenants = ApiKeyQuerySet.as_all_tenants_manager()
    objects = ApiKeyQuerySet.as_manager()

The system check :func:`check_tenant_managers` refuses a model that gets this wrong. The
base manager stays Django's plain one. Migration state records the default manager, so a
data migration's historical model has ``all_tenants`` (a plain manager) and no ``objects``:
a migration crosses tenants by nature.

On PostgreSQL the database holds the same line (:mod:`apps.tenants.rls`): every
tenant-owned table has a row-level security policy keyed on the current scope, so a query
that escapes this module inside a scope still sees no other tenant's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Self

from django.apps import apps
from django.core import checks
from django.db import models

from apps.core.models import BaseModel

if TYPE_CHECKING:
    from apps.tenants.models import Tenant

_scope: ContextVar[frozenset[int] | None] = ContextVar("discreet_tenant_scope", default=None)


class TenantScopeError(RuntimeError):
    """Tenant-owned rows were reached in a way the tenant scope forbids."""


class TenantScopeRequired(TenantScopeError):  # noqa: N818 - says what the caller must do
    """``Model.objects`` was read outside a tenant scope. Name the tenant with
    ``for_tenant(tenant)``, run inside ``tenant_scope(tenant)``, or, where crossing
    tenants is the point, use ``Model.all_tenants`` and say why."""


class TenantScopeConflict(TenantScopeError):  # noqa: N818 - reads as the condition
    """Code running for one tenant named another (``for_tenant``, a write, a nested scope)."""


def _tenant_id(tenant: Tenant | int) -> int:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    if tenant_id is None:
        raise ValueError("an unsaved tenant cannot scope a query")
    return tenant_id


# --- The scope ----------------------------------------------------------------------------

def current_tenant_ids() -> frozenset[int] | None:
    """The tenants the running code may read; ``None`` outside any scope."""
    return _scope.get()


def enter_tenant_scope(*tenants: Tenant | int) -> Token[frozenset[int] | None]:
    """Open a scope over ``tenants``; pair with :func:`exit_tenant_scope` in a ``finally``.
    Prefer :func:`tenant_scope`. A nested scope may only narrow the one it runs in."""
    tenant_ids = frozenset(_tenant_id(t) for t in tenants)
    outer = _scope.get()
    if outer is not None and not tenant_ids <= outer:
        raise TenantScopeConflict(
            f"a scope over tenants {sorted(tenant_ids)} inside one over {sorted(outer)}")
    return _scope.set(tenant_ids)


def exit_tenant_scope(token: Token[frozenset[int] | None]) -> None:
    _scope.reset(token)


@contextmanager
def tenant_scope(*tenants: Tenant | int) -> Iterator[None]:
    """Run the block for ``tenants`` (usually one): ``Model.objects`` sees only their rows."""
    token = enter_tenant_scope(*tenants)
    try:
        yield
    finally:
        exit_tenant_scope(token)


def _check_in_scope(tenant_id: int | None) -> None:
    """Inside a scope, refuse a tenant outside it (a row without one fails in the database)."""
    scope = _scope.get()
    if scope is not None and tenant_id is not None and tenant_id not in scope:
        raise TenantScopeConflict(
            f"tenant {tenant_id} is outside the current scope {sorted(scope)}")


# --- Querysets and managers ---------------------------------------------------------------

class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant | int) -> Self:
        """The rows of one named tenant: the way into tenant-owned rows (DESIGN)."""
        tenant_id = _tenant_id(tenant)
        _check_in_scope(tenant_id)
        return self.filter(tenant_id=tenant_id)

    def create(self, **kwargs: Any) -> Any:
        tenant = kwargs.get("tenant")
        _check_in_scope(kwargs.get("tenant_id", getattr(tenant, "pk", None)))
        return super().create(**kwargs)

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        objs = list(objs)
        for obj in objs:
            _check_in_scope(obj.tenant_id)
        return super().bulk_create(objs, *args, **kwargs)

    @classmethod
    def as_manager(cls) -> TenantManager:  # type: ignore[override]
        """``objects``: the scoped manager over this queryset class."""
        manager = TenantManager.from_queryset(cls)()
        manager._built_with_as_manager = True
        return manager

    as_manager.queryset_only = True  # type: ignore[attr-defined]

    @classmethod
    def as_all_tenants_manager(cls) -> AllTenantsManager:
        """``all_tenants``: the cross-tenant bypass over this queryset class."""
        return AllTenantsManager.from_queryset(cls)()

    as_all_tenants_manager.queryset_only = True  # type: ignore[attr-defined]


class TenantManager(models.Manager):
    """``Model.objects``: raises outside a tenant scope, filtered to it inside one."""

    def get_queryset(self) -> TenantQuerySet:
        scope = _scope.get()
        if scope is None:
            raise TenantScopeRequired(
                f"{self.model.__name__}.objects outside a tenant scope: use "
                f"for_tenant(tenant), tenant_scope(tenant) or, on purpose, all_tenants")
        queryset = super().get_queryset()
        if len(scope) == 1:
            return queryset.filter(tenant_id=next(iter(scope)))
        return queryset.filter(tenant_id__in=sorted(scope))

    def _unscoped(self) -> TenantQuerySet:
        return super().get_queryset()

    # Ways in that name their tenant, so they need no scope.
    def for_tenant(self, tenant: Tenant | int) -> TenantQuerySet:
        return self._unscoped().for_tenant(tenant)

    def create(self, **kwargs: Any) -> Any:
        return self._unscoped().create(**kwargs)

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        return self._unscoped().bulk_create(objs, *args, **kwargs)


class AllTenantsManager(models.Manager):
    """``Model.all_tenants``: every tenant's rows. Also the default manager that Django's
    own machinery uses (see the module docstring)."""


class TenantOwnedModel(BaseModel):
    """Every row that belongs to a tenant. Query it with ``Model.objects.for_tenant(t)`` or
    inside a tenant scope; code that must cross tenants uses ``Model.all_tenants`` and says
    why in a comment."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")

    # Declared first: the default manager of subclasses (module docstring).
    all_tenants = TenantQuerySet.as_all_tenants_manager()
    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True
        default_manager_name = "all_tenants"


def tenant_owned_models() -> list[type[TenantOwnedModel]]:
    return [m for m in apps.get_models() if issubclass(m, TenantOwnedModel)]


def check_tenant_managers(app_configs: Sequence[Any] | None = None,
                          **kwargs: Any) -> list[checks.CheckMessage]:
    """Every tenant-owned model fails closed through ``objects`` and leaves Django's
    machinery the unscoped ``all_tenants``."""
    errors = []
    for model in tenant_owned_models():
        objects = getattr(model, "objects", None)
        bypass = getattr(model, "all_tenants", None)
        if not isinstance(objects, TenantManager):
            errors.append(checks.Error(
                f"{model._meta.label}.objects is not a TenantManager",
                hint="Use a TenantQuerySet subclass's as_manager().", obj=model,
                id="tenants.E001"))
        if (not isinstance(bypass, AllTenantsManager)
                or model._meta.default_manager is None
                or model._meta.default_manager.name != "all_tenants"):
            errors.append(checks.Error(
                f"{model._meta.label}: the default manager must be all_tenants",
                hint="Declare all_tenants = <QuerySet>.as_all_tenants_manager() before "
                     "objects.", obj=model, id="tenants.E002"))
    return errors
