"""A restricted subject's data is frozen (GDPR Art. 18): kept, so retention deletes none of
it, and the dry run counts exactly what the run then deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.consent.models import ConsentRecord, SubjectState
from apps.consent.services import set_restriction
from apps.events.models import Event
from apps.retention.selectors import preview_retention
from apps.retention.services import enforce_retention_now, set_retention_policy
from apps.tenants.models import Scope
from tests.factories.retention import at, consent_at, events_at

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
YEAR = timedelta(days=365)
LONG_AGO = NOW - timedelta(days=2000)  # past the events, inactivity and ledger periods


def _restricted(tenant, subject: str) -> str:
    key = consent_at(tenant, subject, LONG_AGO)
    with at(LONG_AGO + SECOND):
        set_restriction(tenant=tenant, subject_key=key, restricted=True)
    return key


def test_retention_keeps_every_row_of_a_restricted_subject(tenant):
    restricted = _restricted(tenant, "restricted")
    free = consent_at(tenant, "free", LONG_AGO)
    events_at(tenant, restricted, NOW - YEAR - SECOND, n=2)
    events_at(tenant, free, NOW - YEAR - SECOND, n=3)

    with at(NOW):
        preview = preview_retention(tenant=tenant)
        deleted = enforce_retention_now(tenant=tenant)

    assert deleted["events"] == preview["events"] == 3
    assert Event.objects.for_tenant(tenant).filter(subject_key=restricted).count() == 2
    assert not Event.objects.for_tenant(tenant).filter(subject_key=free).exists()
    # Not removed as inactive, and the ledger outlives its five years while restricted.
    assert deleted["inactive_subjects"] == preview["inactive_subjects"] == 1
    assert SubjectState.objects.for_tenant(tenant).filter(subject_key=restricted,
                                                          restricted=True).exists()
    assert ConsentRecord.objects.for_tenant(tenant).filter(subject_key=restricted).exists()
    assert not ConsentRecord.objects.for_tenant(tenant).filter(subject_key=free).exists()


def test_lifting_the_restriction_lets_retention_delete_again(tenant):
    restricted = _restricted(tenant, "restricted")
    events_at(tenant, restricted, NOW - YEAR - SECOND, n=2)
    with at(NOW - YEAR - SECOND):
        set_restriction(tenant=tenant, subject_key=restricted, restricted=False)

    with at(NOW):
        deleted = enforce_retention_now(tenant=tenant)

    assert deleted["events"] == 2
    assert not Event.objects.for_tenant(tenant).filter(subject_key=restricted).exists()


# --- Acceptance (issue 14): a one-day events policy, through ``manage.py enforce_retention``


def _enforce(tenant, moment: datetime) -> str:
    out = StringIO()
    with at(moment):
        call_command("enforce_retention", "--tenant", tenant.slug, stdout=out)
    return out.getvalue()


def test_a_restriction_freezes_old_events_under_a_one_day_policy_until_it_is_lifted(
        tenant, make_client):
    set_retention_policy(tenant=tenant, category="events", days=1)
    three_days_ago = NOW - timedelta(days=3)
    restricted = consent_at(tenant, "restricted", three_days_ago)
    with at(three_days_ago + SECOND):
        set_restriction(tenant=tenant, subject_key=restricted, restricted=True)
    free = consent_at(tenant, "free", three_days_ago)
    events_at(tenant, restricted, three_days_ago, n=2)
    events_at(tenant, free, three_days_ago, n=3)

    printed = _enforce(tenant, NOW)

    assert "events: 3" in printed.splitlines()
    assert Event.objects.for_tenant(tenant).filter(subject_key=restricted).count() == 2
    assert not Event.objects.for_tenant(tenant).filter(subject_key=free).exists()
    # The flag survives: the restricted subject is not removed as inactive.
    assert SubjectState.objects.for_tenant(tenant).get(subject_key=restricted).restricted
    assert not SubjectState.objects.for_tenant(tenant).filter(subject_key=free).exists()

    with at(NOW + SECOND):
        lifted = make_client(tenant, scopes=[Scope.PRIVACY_WRITE]).delete(
            "/api/v1/subjects/restricted/restriction")
    assert lifted.status_code == 200
    assert lifted.json()["flags"]["restricted"] is False

    printed = _enforce(tenant, NOW + timedelta(minutes=1))

    assert "events: 2" in printed.splitlines()
    assert not Event.objects.for_tenant(tenant).filter(subject_key=restricted).exists()


@pytest.mark.integration
def test_the_freeze_holds_on_the_real_worker_and_ends_with_the_lift(live_worker, make_client):
    """The same acceptance line with the runs executed by the worker (PostgreSQL + Redis):
    real time, data three days old, a one-day events policy."""
    from apps.core.jobs import DurableJob
    from apps.retention.models import RetentionRun
    from apps.retention.services import start_retention_run
    from tests.factories.tenants import TenantFactory
    from tests.integration_support import wait_for

    tenant = TenantFactory()
    set_retention_policy(tenant=tenant, category="events", days=1)
    three_days_ago = timezone.now() - timedelta(days=3)
    key = consent_at(tenant, "restricted", three_days_ago)
    with at(three_days_ago + SECOND):
        set_restriction(tenant=tenant, subject_key=key, restricted=True)
    events_at(tenant, key, three_days_ago, n=2)

    def run_on_the_worker() -> RetentionRun:
        run = start_retention_run(tenant=tenant, trigger=RetentionRun.Trigger.ADMIN)
        wait_for(lambda: RetentionRun.all_tenants.get(pk=run.pk).status
                 == DurableJob.Status.SUCCEEDED, timeout=60)
        return RetentionRun.all_tenants.get(pk=run.pk)

    run_on_the_worker()
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 2
    assert SubjectState.objects.for_tenant(tenant).get(subject_key=key).restricted

    lifted = make_client(tenant, scopes=[Scope.PRIVACY_WRITE]).delete(
        "/api/v1/subjects/restricted/restriction")
    assert lifted.json()["flags"]["restricted"] is False

    run = run_on_the_worker()
    assert run.progress["categories"]["events"]["deleted"] == 2
    assert not Event.objects.for_tenant(tenant).filter(subject_key=key).exists()
