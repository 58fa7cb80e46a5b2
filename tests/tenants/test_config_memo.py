"""The per-process memo of a tenant's configuration is exact: every change to what it holds
reaches the next reader that loads the tenant, in this process or another."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save

from apps.consent.models import PrivacyNotice, Purpose
from apps.consent.selectors import can_use
from apps.consent.services import create_purpose, publish_notice
from apps.events.models import EventProperty, EventType
from apps.events.selectors import get_event_schema
from apps.retention.models import RetentionPolicy
from apps.retention.selectors import get_retention_period
from apps.retention.services import set_retention_policy
from apps.tenants.config_memo import forget_tenant_config
from apps.tenants.models import Tenant
from tests.factories.consent import record_for, subject_key


def fresh(tenant: Tenant) -> Tenant:
    """The tenant as a new request loads it."""
    return Tenant.objects.get(pk=tenant.pk)


def test_a_memoized_schema_costs_no_query(tenant, django_assert_num_queries):
    get_event_schema(tenant=tenant)
    with django_assert_num_queries(0):
        schema = get_event_schema(tenant=tenant)
    assert "purchase" in schema.types


def test_an_edit_reaches_the_next_reader_and_stale_instances_in_this_process(tenant):
    assert get_event_schema(tenant=tenant).types["view"].weight == 1
    view = EventType.objects.for_tenant(tenant).get(code="view")
    view.weight = 3
    view.save()  # as the admin does

    assert get_event_schema(tenant=fresh(tenant)).types["view"].weight == 3
    assert get_event_schema(tenant=tenant).types["view"].weight == 3  # loaded before it


def test_a_change_committed_by_another_process_reaches_a_freshly_loaded_tenant(tenant):
    """Another process's change: a new revision and new rows, and no signal in this one."""
    assert get_event_schema(tenant=fresh(tenant)).types["view"].weight == 1
    with connection.cursor() as cursor:
        cursor.execute("UPDATE events_eventtype SET weight = 5 WHERE tenant_id = %s "
                       "AND code = 'view'", [tenant.pk])
    Tenant.objects.filter(pk=tenant.pk).update(config_revision=uuid.uuid4())

    assert get_event_schema(tenant=fresh(tenant)).types["view"].weight == 5


def _delete_view_then_fail(tenant: Tenant) -> None:
    with transaction.atomic():
        EventType.objects.for_tenant(tenant).filter(code="view").get().delete()
        assert "view" not in get_event_schema(tenant=fresh(tenant)).types  # memoized
        raise RuntimeError("roll back")


def test_what_a_rolled_back_change_memoized_is_never_served(tenant):
    assert get_event_schema(tenant=fresh(tenant)).types["view"].weight == 1
    with pytest.raises(RuntimeError):
        _delete_view_then_fail(tenant)

    assert get_event_schema(tenant=fresh(tenant)).types["view"].weight == 1


def test_a_revision_read_alone_is_not_trusted_without_its_data(tenant):
    """The memo is labelled with the revision read before its data: a fresh tenant whose
    revision the memo never saw reloads."""
    get_event_schema(tenant=fresh(tenant))
    forget_tenant_config(tenant.pk)
    Tenant.objects.filter(pk=tenant.pk).update(config_revision=uuid.uuid4())
    EventProperty.objects.create(tenant=tenant, name="shelf", kind="string")

    assert "shelf" in get_event_schema(tenant=fresh(tenant)).properties


@pytest.mark.parametrize("change", ["new_purpose", "purpose_default", "notice",
                                    "retention", "property_deleted"])
def test_every_watched_change_gives_a_new_revision(tenant, change):
    before = fresh(tenant).config_revision
    if change == "new_purpose":
        create_purpose(tenant=tenant, key="surveys", name="Surveys", description="d",
                       legal_basis=Purpose.LegalBasis.CONSENT)
    elif change == "purpose_default":
        purpose = Purpose.objects.for_tenant(tenant).get(key="analytics")
        purpose.default_granted = not purpose.default_granted
        purpose.save()
    elif change == "notice":
        publish_notice(tenant=tenant, version="v-memo", text="t",
                       purpose_keys=["personalization"])
    elif change == "retention":
        set_retention_policy(tenant=tenant, category="events", days=30)
    else:
        EventProperty.objects.create(tenant=tenant, name="gone", kind="string").delete()

    assert fresh(tenant).config_revision != before


def test_consent_and_retention_readers_follow_changes(tenant):
    key = subject_key(1)
    record_for(tenant, key, personalization=True)
    assert can_use(tenant=fresh(tenant), subject_key=key, purpose="personalization")
    assert get_retention_period(tenant=fresh(tenant), category="events").days == 365

    set_retention_policy(tenant=tenant, category="events", days=30)
    publish_notice(tenant=tenant, version="v-renew", text="t",
                   purpose_keys=["personalization"], require_renewal=True)

    reader = fresh(tenant)
    assert get_retention_period(tenant=reader, category="events").days == 30
    assert not can_use(tenant=reader, subject_key=key, purpose="personalization")


@pytest.mark.parametrize("model", [EventType, EventProperty, Purpose, PrivacyNotice,
                                   RetentionPolicy])
def test_every_memoized_model_is_watched(model):
    """A memoized reader of a model whose changes are not watched would serve stale data."""
    for signal, action in ((post_save, "save"), (post_delete, "delete")):
        uids = {entry[0][0] for entry in signal.receivers}
        assert f"tenant-config:{model._meta.label}:{action}" in uids
