"""Every choice the admin offers a tenant member comes from their own tenants (issue 16, 3).

The test walks ``admin.site``'s registry, so a new admin, list filter, autocomplete field or
foreign-key field is covered without editing it. For each one whose choices are read from
the database through a relation (a related row, or a value of one: ``purpose__key``), the
other tenant gets a row of the related model and the member of the first tenant must not
be offered it. A related model the test cannot build fails the test: add it to ``MAKERS``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

import factory
import pytest
from django import forms
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.db import models
from django.test import Client, RequestFactory

import tests.factories
from apps.tenants.models import Membership, Tenant
from apps.tenants.scoping import TenantOwnedModel, tenant_scope
from tests.factories.tenants import MembershipFactory

User = get_user_model()


def _factories() -> dict[type[models.Model], Callable[[Tenant], Any]]:
    makers: dict[type[models.Model], Callable[[Tenant], Any]] = {}
    for info in pkgutil.iter_modules(tests.factories.__path__):
        module = importlib.import_module(f"tests.factories.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, factory.django.DjangoModelFactory) and cls._meta.model:
                model = cls._meta.model
                if isinstance(model, type) and issubclass(model, TenantOwnedModel):
                    makers.setdefault(model, lambda t, cls=cls: cls(tenant=t))
    return makers


#: How to give a tenant one row of a model (factories are found on their own).
MAKERS: dict[type[models.Model], Callable[[Tenant], Any]] = {
    **_factories(),
    Tenant: lambda t: t,
    User: lambda t: MembershipFactory(tenant=t, user__username=f"stranger-{t.pk}@x.test").user,
}


def _is_tenant_data(model: type[models.Model]) -> bool:
    return model in (Tenant, User) or issubclass(model, TenantOwnedModel)


def _admins() -> Iterator[tuple[type[models.Model], admin.ModelAdmin]]:
    yield from admin.site._registry.items()


def _member_request(user: Any) -> Any:
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _filter_targets(model: type[models.Model], entry: Any) -> tuple[type[models.Model], str
                                                                      | None] | None:
    """(related model, attribute shown or None for the row itself) for a filter that reads
    its choices through a relation; None for one that does not."""
    path = entry if isinstance(entry, str) else (
        entry[0] if isinstance(entry, tuple | list) else None)
    if path is None:
        return None
    fields = get_fields_from_path(model, path)
    last = fields[-1]
    if last.is_relation:
        return last.related_model, None
    if len(fields) > 1:
        return last.model, last.name
    return None


@pytest.fixture
def member(tenant) -> Any:
    return MembershipFactory(tenant=tenant, role=Membership.Role.OWNER).user


def _planted(other_tenant, model: type[models.Model]) -> Any:
    maker = MAKERS.get(model)
    assert maker is not None, f"{__file__}: add a MAKERS entry for {model}"
    return maker(other_tenant)


def test_list_filters_offer_only_the_members_tenants(tenant, other_tenant, member):
    checked = []
    for model, model_admin in _admins():
        request = _member_request(member)
        with tenant_scope(tenant):
            if not model_admin.has_view_permission(request):
                continue
            entries = model_admin.get_list_filter(request)
        for entry in entries:
            target = _filter_targets(model, entry)
            if target is None or not _is_tenant_data(target[0]):
                continue
            related, attribute = target
            row = _planted(other_tenant, related)
            theirs = str(getattr(row, attribute)) if attribute else str(row.pk)
            with tenant_scope(tenant):
                changelist = model_admin.get_changelist_instance(request)
                offered = set()
                for spec in changelist.filter_specs:
                    lookups = getattr(spec, "lookup_choices", [])
                    offered |= {str(c[0] if isinstance(c, tuple | list) else c) for c in lookups}
            assert theirs not in offered, (
                f"{model_admin}: filter {entry!r} offers another tenant's {related.__name__}")
            checked.append((model.__name__, entry if isinstance(entry, str) else entry[0]))
    # The walk reached the filters that leaked before the fix.
    assert {("ConsentRecord", "purpose__key"), ("ConsentState", "purpose__key")} <= set(checked)


def test_form_choices_offer_only_the_members_tenants(tenant, other_tenant, member):
    planted: dict[type[models.Model], Any] = {}
    checked = []
    for model, model_admin in _admins():
        request = _member_request(member)
        with tenant_scope(tenant):
            if not model_admin.has_add_permission(request):
                continue
            form_class = model_admin.get_form(request, None)
        for name, field in form_class.base_fields.items():
            if isinstance(field, forms.ModelChoiceField):
                related = field.queryset.model
                if not _is_tenant_data(related):
                    continue
                if related not in planted:
                    planted[related] = _planted(other_tenant, related)
                with tenant_scope(tenant):
                    offered = set(field.queryset.values_list("pk", flat=True))
                assert planted[related].pk not in offered, (
                    f"{model_admin}: form field {name!r} offers another tenant's row")
                checked.append((model.__name__, name))
            elif isinstance(field, forms.ChoiceField):
                # Choices of a plain choice field are fixed in the code, never rows.
                assert not callable(getattr(field, "_choices", None)), (model_admin, name)
    assert {("Membership", "user"), ("PrivacyNotice", "purposes")} <= set(checked)


def test_autocomplete_offers_only_the_members_tenants(tenant, other_tenant, member):
    client = Client()
    client.force_login(member)
    for model, model_admin in _admins():
        request = _member_request(member)
        with tenant_scope(tenant):
            fields = model_admin.get_autocomplete_fields(request)
        for name in fields:
            related = model._meta.get_field(name).related_model
            row = _planted(other_tenant, related)
            response = client.get("/admin/autocomplete/", {
                "app_label": model._meta.app_label, "model_name": model._meta.model_name,
                "field_name": name, "term": ""})
            ids = {r["id"] for r in response.json().get("results", [])}
            assert str(row.pk) not in ids, f"{model_admin}: autocomplete {name!r} leaks"


def test_the_purpose_filter_lists_the_members_purpose_keys(tenant, other_tenant, member):
    from tests.factories.consent import (
        PrivacyNoticeFactory,
        PurposeFactory,
        record_for,
        subject_key,
    )

    PurposeFactory(tenant=tenant, key="ours_only")
    PurposeFactory(tenant=other_tenant, key="theirs_only")
    PrivacyNoticeFactory(tenant=tenant)
    record_for(tenant, subject_key(1), ours_only=True)
    client = Client()
    client.force_login(member)
    for page in ("/admin/consent/consentrecord/", "/admin/consent/consentstate/"):
        body = client.get(page).content.decode()
        assert "ours_only" in body
        assert "theirs_only" not in body
