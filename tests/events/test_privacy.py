"""Events are subject data: exported and erased through their declaration, and the raw
subject id never reaches a table or a log line."""

from __future__ import annotations

import logging

from django.db import connection

from apps.core.subject_data import subject_data_stores, undeclared_subject_models
from apps.events.models import Event
from apps.events.services import ingest_events
from apps.tenants.services import pseudonymize
from tests.factories.events import EventFactory, event_payload, grant_consent

RAW_ID = "raw.subject+4711@example.org"


def handler():
    return next(s for s in subject_data_stores() if "events.Event" in s.models)


def test_events_are_covered_by_a_declaration():
    assert "events.Event" not in undeclared_subject_models()


def test_a_correction_deletes_the_chosen_events_of_that_subject_only(tenant):
    from apps.core.subject_data import Correction

    key = pseudonymize(tenant, "alice")
    EventFactory(tenant=tenant, subject_key=key, event_id="wrong")
    EventFactory(tenant=tenant, subject_key=key, event_id="right")
    EventFactory(tenant=tenant, subject_key="other" * 8, event_id="theirs")

    outcome = handler().rectify(tenant, key, Correction({"delete_events": ["wrong", "theirs"]},
                                                        "api"))

    assert outcome == {"events_deleted": 1}
    assert sorted(Event.objects.for_tenant(tenant).values_list("event_id", flat=True)) == [
        "right", "theirs"]
    assert handler().rectify(tenant, key, Correction({"level": "full"}, "api")) == {}


def test_export_returns_the_subjects_events_of_that_tenant_only(tenant, other_tenant):
    key = pseudonymize(tenant, "alice")
    EventFactory(tenant=tenant, subject_key=key, event_id="mine", properties={"source": "x"})
    EventFactory(tenant=tenant, subject_key="other" * 8, event_id="someone-else")
    EventFactory(tenant=other_tenant, subject_key=key, event_id="other-tenant")

    exported = handler().export(tenant, key)

    assert [row["event_id"] for row in exported] == ["mine"]
    assert exported[0]["properties"] == {"source": "x"}
    assert exported[0]["item__external_id"]


def test_erase_deletes_the_subjects_events_of_that_tenant_only(tenant, other_tenant):
    key = pseudonymize(tenant, "alice")
    EventFactory.create_batch(3, tenant=tenant, subject_key=key)
    EventFactory(tenant=other_tenant, subject_key=key)

    assert handler().erase(tenant, key) == 3

    assert not Event.objects.for_tenant(tenant).filter(subject_key=key).exists()
    assert Event.objects.for_tenant(other_tenant).count() == 1


def _every_stored_value() -> str:
    """Every value of every row of every table, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        chunks.append(bytes(value).decode("latin-1"))
                    elif value is not None:
                        chunks.append(str(value))
    return "\n".join(chunks)


def test_the_raw_subject_id_is_in_no_table_and_no_log_line(
        api, tenant, caplog, django_capture_on_commit_callbacks):
    grant_consent(tenant, RAW_ID)
    events = [
        event_payload(RAW_ID, properties={"source": "home", "email": RAW_ID}),
        event_payload(RAW_ID, item=RAW_ID[:20]),
        event_payload("someone-else"),
        event_payload(RAW_ID, type="teleport"),
    ]
    caplog.set_level(logging.DEBUG)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/events", {"events": events}, format="json",
                            headers={"Sec-GPC": "1"})

    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    assert RAW_ID not in response.content.decode()
    assert RAW_ID not in _every_stored_value()
    assert pseudonymize(tenant, RAW_ID) in _every_stored_value()  # the search does search
    for record in caplog.records:
        assert RAW_ID not in record.getMessage()
        assert RAW_ID not in str(record.args)


def test_no_ip_address_or_user_agent_is_stored(api, tenant, consenting):
    ingest_events(tenant=tenant, events=[event_payload(
        consenting, properties={"ip": "203.0.113.9", "user_agent": "Mozilla/5.0 Probe"})])
    api.post("/api/v1/events", {"events": [event_payload(consenting)]}, format="json",
             headers={"User-Agent": "Mozilla/5.0 Probe"}, REMOTE_ADDR="203.0.113.9")

    stored = _every_stored_value()
    assert "203.0.113.9" not in stored
    assert "Mozilla/5.0 Probe" not in stored
