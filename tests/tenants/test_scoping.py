"""Tenancy fails closed (DESIGN "Tenant scoping"): outside a tenant scope ``Model.objects``
of every tenant-owned model raises; inside one it sees only the scoped tenant; requests
and tasks run in the right scope, and it never outlives them."""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable
from typing import Any

import pytest
from celery import shared_task
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db.models import Model
from django.db.models.lookups import Exact
from django.test import Client

from apps.events.models import Event
from apps.tenants.apis import ApiRootApi
from apps.tenants.models import Membership, Tenant
from apps.tenants.scoping import (
    TenantScopeConflict,
    TenantScopeRequired,
    check_tenant_managers,
    current_tenant_ids,
    tenant_owned_models,
    tenant_scope,
)
from apps.tenants.tasks import TenantScopedTask
from tests.factories.events import EventFactory
from tests.factories.tenants import MembershipFactory, TenantFactory, make_api_key

MODELS = tenant_owned_models()
READS: dict[str, Callable[[type[Model]], Any]] = {
    "all": lambda model: model.objects.all(),
    "filter": lambda model: model.objects.filter(pk=1),
    "get": lambda model: model.objects.get(pk=1),
    "count": lambda model: model.objects.count(),
    "exists": lambda model: model.objects.exists(),
    "update": lambda model: model.objects.update(),
    "delete": lambda model: model.objects.all().delete(),
}


def _label(model: type[Model]) -> str:
    return model._meta.label


def test_the_walk_covers_every_tenant_owned_model():
    labels = {_label(m) for m in MODELS}
    assert {"tenants.ApiKey", "events.Event", "consent.ConsentRecord",
            "privacy.PrivacyRequest", "modeling.TrainingRun", "audit.AuditEvent"} <= labels
    assert len(MODELS) >= 30


def test_every_model_that_points_at_a_tenant_is_tenant_owned():
    """A row that belongs to a tenant (any concrete relation to ``Tenant``) fails closed like
    the rest: it inherits ``TenantOwnedModel`` (the audit chain head once did not)."""
    from django.apps import apps

    pointing = {_label(m) for m in apps.get_models() if m is not Tenant and any(
        f.concrete and getattr(f, "related_model", None) is Tenant
        for f in m._meta.get_fields())}
    assert pointing
    assert pointing <= {_label(m) for m in MODELS}


def test_every_tenant_owned_model_has_the_scoped_objects_and_the_bypass_as_default():
    assert check_tenant_managers() == []
    for model in MODELS:
        assert model._default_manager.name == "all_tenants", _label(model)
        assert model._base_manager.name != "objects", _label(model)


@pytest.mark.parametrize("read", list(READS))
@pytest.mark.parametrize("model", MODELS, ids=_label)
def test_objects_raises_outside_a_scope(model, read):
    # No database access is allowed here: the read must refuse before any query.
    with pytest.raises(TenantScopeRequired):
        READS[read](model)


@pytest.mark.parametrize("model", MODELS, ids=_label)
def test_objects_inside_a_scope_sees_only_the_scoped_tenant(model, tenant, other_tenant):
    # Provisioning gave both tenants rows in many of these tables.
    theirs = list(model.all_tenants.filter(tenant=other_tenant).values_list("pk", flat=True))
    mine = set(model.all_tenants.filter(tenant=tenant).values_list("pk", flat=True))
    with tenant_scope(tenant):
        where = model.objects.all().query.where
        assert any(isinstance(c, Exact) and c.lhs.target.name == "tenant" and c.rhs == tenant.pk
                   for c in where.children), "objects is not filtered to the scoped tenant"
        assert {row.pk for row in model.objects.all()} == mine
        assert model.objects.count() == len(mine)
        assert not model.objects.filter(pk__in=theirs).exists()
        if theirs:
            with pytest.raises(model.DoesNotExist):
                model.objects.get(pk=theirs[0])
        assert set(model.objects.for_tenant(tenant).values_list("pk", flat=True)) == mine
        with pytest.raises(TenantScopeConflict):
            model.objects.for_tenant(other_tenant)
        with pytest.raises(TenantScopeConflict):
            model.all_tenants.for_tenant(other_tenant.pk)
    assert set(model.objects.for_tenant(other_tenant).values_list("pk", flat=True)) == set(theirs)


def test_rows_from_the_scope_are_really_filtered(tenant, other_tenant):
    mine = EventFactory(tenant=tenant)
    EventFactory(tenant=other_tenant)
    with tenant_scope(tenant):
        assert list(Event.objects.all()) == [mine]
        assert Event.objects.get() == mine
    with tenant_scope(other_tenant.pk):
        assert mine.pk not in set(Event.objects.values_list("pk", flat=True))


def test_writes_that_name_their_tenant_need_no_scope_but_stay_inside_one(tenant, other_tenant):
    user = MembershipFactory(tenant=tenant).user  # factory_boy: objects.create(tenant=...)
    Membership.objects.bulk_create([Membership(tenant=other_tenant, user=user)])
    assert Membership.objects.for_tenant(other_tenant).get().user == user
    with tenant_scope(tenant), pytest.raises(TenantScopeConflict):
        Membership.objects.create(tenant=other_tenant, user=MembershipFactory().user)
    with tenant_scope(tenant), pytest.raises(TenantScopeConflict):
        Membership.objects.bulk_create([Membership(tenant_id=other_tenant.pk, user=user)])


def test_djangos_machinery_uses_the_unscoped_managers(tenant):
    membership = MembershipFactory(tenant=tenant)
    duplicate = Membership(tenant=tenant, user=membership.user)
    with pytest.raises(ValidationError, match="already exists"):
        duplicate.full_clean()  # unique constraint validation, outside any scope
    membership.refresh_from_db()
    assert membership.tenant == tenant  # forward relation: the base manager
    assert list(membership.user.memberships.all()) == [membership]  # a reverse related manager
    out = io.StringIO()
    call_command("dumpdata", "tenants.membership", stdout=out)
    assert f'"user": {membership.user_id}' in out.getvalue()
    membership.delete()  # the deletion collector
    assert not Membership.all_tenants.filter(pk=membership.pk).exists()


def test_nested_scopes_may_narrow_but_not_widen(tenant, other_tenant):
    with tenant_scope(tenant, other_tenant):
        assert current_tenant_ids() == {tenant.pk, other_tenant.pk}
        with tenant_scope(tenant):
            assert current_tenant_ids() == {tenant.pk}
        with tenant_scope(tenant), pytest.raises(TenantScopeConflict), tenant_scope(other_tenant):
            pass
    with pytest.raises(RuntimeError, match="boom"), tenant_scope(tenant):
        raise RuntimeError("boom")
    assert current_tenant_ids() is None


# --- API requests -------------------------------------------------------------------------

def _spy_on_api_root(mocker, outcome: Callable[[], Any] | None = None) -> list[Any]:
    seen: list[Any] = []
    original = ApiRootApi.get

    def get(view: ApiRootApi, request: Any) -> Any:
        seen.append(current_tenant_ids())
        if outcome is not None:
            outcome()
        return original(view, request)

    mocker.patch.object(ApiRootApi, "get", get)
    return seen


def test_an_api_request_runs_in_its_keys_tenant_scope_and_leaves_none(tenant, api, mocker):
    seen = _spy_on_api_root(mocker)
    assert api.get("/api/v1/").status_code == 200
    assert seen == [{tenant.pk}]
    assert current_tenant_ids() is None


def test_the_api_scope_is_reset_after_a_handled_error(api, mocker):
    from rest_framework.exceptions import NotFound

    def fail() -> None:
        raise NotFound()

    seen = _spy_on_api_root(mocker, fail)
    assert api.get("/api/v1/").status_code == 404
    assert len(seen) == 1
    assert current_tenant_ids() is None


def test_the_api_scope_is_reset_after_an_unhandled_error(api, mocker):
    def crash() -> None:
        raise RuntimeError("handler crashed")

    _spy_on_api_root(mocker, crash)
    with pytest.raises(RuntimeError, match="handler crashed"):
        api.get("/api/v1/")
    assert current_tenant_ids() is None


def test_an_unauthenticated_api_request_gets_no_scope(db, mocker):
    seen = _spy_on_api_root(mocker)
    assert Client().get("/api/v1/").status_code == 401
    assert seen == []
    assert current_tenant_ids() is None


# --- Admin requests -----------------------------------------------------------------------

def test_a_members_admin_request_is_scoped_to_their_tenants(tenant, other_tenant, mocker):
    from apps.tenants.admin import ApiKeyAdmin

    third = TenantFactory()
    membership = MembershipFactory(tenant=tenant)
    MembershipFactory(tenant=other_tenant, user=membership.user, role=Membership.Role.VIEWER)
    make_api_key(third, name="third-key")
    seen: list[Any] = []
    original = ApiKeyAdmin.get_queryset
    mocker.patch.object(ApiKeyAdmin, "get_queryset",
                        lambda admin, request: seen.append(current_tenant_ids())
                        or original(admin, request))
    client = Client()
    client.force_login(membership.user)
    body = client.get("/admin/tenants/apikey/").content.decode()
    assert "third-key" not in body
    assert seen
    assert all(scope == {tenant.pk, other_tenant.pk} for scope in seen)
    assert current_tenant_ids() is None


def test_a_superusers_admin_request_has_no_scope(tenant, other_tenant, admin_client, mocker):
    from apps.tenants.admin import ApiKeyAdmin

    make_api_key(tenant, name="first-key")
    make_api_key(other_tenant, name="second-key")
    seen: list[Any] = []
    original = ApiKeyAdmin.get_queryset
    mocker.patch.object(ApiKeyAdmin, "get_queryset",
                        lambda admin, request: seen.append(current_tenant_ids())
                        or original(admin, request))
    body = admin_client.get("/admin/tenants/apikey/").content.decode()
    assert "first-key" in body
    assert "second-key" in body
    assert seen
    assert all(scope is None for scope in seen)


# --- Tasks --------------------------------------------------------------------------------

_task_scopes: list[Any] = []


@shared_task(name="tests.scope_probe")
def scope_probe_task(tenant_id: int, fail: bool = False) -> None:
    _task_scopes.append(current_tenant_ids())
    if fail:
        raise RuntimeError("task failed")


@shared_task(name="tests.sweeper_probe")
def sweeper_probe_task() -> None:
    _task_scopes.append(current_tenant_ids())


@pytest.fixture
def task_scopes() -> list[Any]:
    _task_scopes.clear()
    return _task_scopes


def test_a_task_runs_in_its_tenants_scope_and_leaves_none(tenant, task_scopes):
    scope_probe_task.delay(tenant.pk)  # eager in tests: Celery's tracer, as in a worker
    scope_probe_task(tenant_id=tenant.pk)  # called directly
    assert task_scopes == [{tenant.pk}, {tenant.pk}]
    assert current_tenant_ids() is None


def test_the_task_scope_is_reset_when_the_task_raises(tenant, task_scopes):
    with pytest.raises(RuntimeError, match="task failed"):
        scope_probe_task.delay(tenant.pk, fail=True)
    assert task_scopes == [{tenant.pk}]
    assert current_tenant_ids() is None


def test_a_task_without_a_tenant_runs_unscoped(task_scopes):
    sweeper_probe_task.delay()
    assert task_scopes == [None]


def test_every_project_task_is_scoped_by_its_first_parameter():
    from platform_site.celery import app

    app.loader.import_default_modules()
    tasks = {name: task for name, task in app.tasks.items() if name.startswith("apps.")}
    assert tasks
    for name, task in tasks.items():
        assert isinstance(task, TenantScopedTask), name
        # STYLE S8: tenant_id first; a cross-tenant task (a beat sweeper, the worker's
        # start-up reconcile) names no tenant among its parameters at all.
        parameters = inspect.signature(task.run).parameters
        assert task._takes_tenant_id or not any("tenant" in p for p in parameters), name


def test_a_tenant_scope_is_one_tenant_even_when_given_the_instance(tenant):
    with tenant_scope(Tenant.objects.get(pk=tenant.pk)):
        assert current_tenant_ids() == {tenant.pk}
