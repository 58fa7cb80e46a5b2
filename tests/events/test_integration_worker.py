"""The history cap through the real stack: ingestion commits, the worker caps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.events.models import Event, HistoryCapStatus
from apps.events.services import ingest_events
from tests.factories.events import event_payload, grant_consent
from tests.factories.tenants import TenantFactory
from tests.integration_support import wait_for

pytestmark = pytest.mark.integration


def test_the_worker_caps_a_history_after_ingestion_commits(live_worker):
    tenant = TenantFactory(settings={"event_history_cap": 4})
    key = grant_consent(tenant, "alice")
    now = timezone.now()
    events = [event_payload("alice", occurred_at=now - timedelta(minutes=n)) for n in range(6)]

    report = ingest_events(tenant=tenant, events=events)  # autocommit: on_commit fires now

    assert report.accepted == 6
    wait_for(lambda: Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 4)
    kept = set(Event.objects.for_tenant(tenant).values_list("event_id", flat=True))
    assert kept == {e["event_id"] for e in events[:4]}
    wait_for(lambda: HistoryCapStatus.objects.for_tenant(tenant).filter(
        events_deleted_total=2).exists())
