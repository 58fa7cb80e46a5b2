"""Ingestion remembers committed items' pks per process; deletes and rollbacks never leave
it pointing at a row that is not there."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.events.models import Event, Item
from apps.events.services import ingest_events
from apps.tenants.models import Tenant
from tests.factories.events import event_payload, grant_consent


def _ingest(tenant: Tenant, n: int, item: str) -> tuple[int, list[str]]:
    fresh = Tenant.objects.get(pk=tenant.pk)  # as a request loads it
    with CaptureQueriesContext(connection) as queries:
        report = ingest_events(tenant=fresh, events=[
            event_payload("memo-subject", event_id=f"memo-{item}-{n}", item=item)])
    assert report.accepted == 1, report.results
    return len(queries), [q["sql"] for q in queries.captured_queries]


def _item_queries(sqls: list[str]) -> int:
    return sum('"events_item"' in sql for sql in sqls)


@pytest.fixture
def consenting(tenant):
    grant_consent(tenant, "memo-subject")
    return tenant


def test_a_committed_item_is_not_looked_up_again(consenting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _, first = _ingest(consenting, 1, "memo-item")
    _, second = _ingest(consenting, 2, "memo-item")

    assert _item_queries(first) == 2  # looked up, created
    assert _item_queries(second) == 0


def test_a_deleted_item_is_forgotten_everywhere(consenting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _ingest(consenting, 1, "short-lived")
    Event.objects.for_tenant(consenting).delete()
    Item.objects.for_tenant(consenting).get(external_id="short-lived").delete()  # admin

    _, sqls = _ingest(consenting, 2, "short-lived")

    assert _item_queries(sqls) == 2  # not remembered: looked up and created again
    event = Event.objects.for_tenant(consenting).get()
    assert event.item.external_id == "short-lived"


def _ingest_then_fail(tenant: Tenant) -> None:
    with transaction.atomic():
        _ingest(tenant, 1, "never-committed")
        raise RuntimeError("the caller's transaction fails")


def test_items_of_a_rolled_back_batch_are_not_remembered(consenting,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        _ingest_then_fail(consenting)
    assert not Item.objects.for_tenant(consenting).filter(external_id="never-committed").exists()

    _, sqls = _ingest(consenting, 2, "never-committed")

    assert _item_queries(sqls) == 2
    assert Item.objects.for_tenant(consenting).filter(external_id="never-committed").exists()
