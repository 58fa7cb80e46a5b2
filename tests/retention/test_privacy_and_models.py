"""The categories of the privacy and modeling apps: closed requests, export files,
erasure tombstones, model artifacts; and models retrained once data they were trained on
is gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.files.storage import default_storage

from apps.consent.models import ConsentState
from apps.core.subject_data import get_subject_data_store, retention_notice
from apps.modeling.models import ModelVersion, ServingState
from apps.privacy.models import DataExport, ErasureTombstone, PrivacyRequest
from apps.retention.services import enforce_retention_now, set_retention_policy
from tests.factories.privacy import make_request
from tests.factories.retention import (
    at,
    closed_request_at,
    consent_at,
    events_at,
    export_at,
    model_version,
    tombstone_at,
)

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
YEAR = timedelta(days=365)


def _enforce(tenant, when=NOW, *, capture=None):
    with at(when):
        if capture is None:
            return enforce_retention_now(tenant=tenant)
        with capture(execute=True):
            return enforce_retention_now(tenant=tenant)


def test_a_closed_request_goes_one_second_after_24_months_and_an_open_one_never(tenant):
    period = timedelta(days=731)
    kept = closed_request_at(tenant, "inside@example.com", NOW - period + SECOND)
    gone = closed_request_at(tenant, "past@example.com", NOW - period - SECOND)
    with at(NOW - 3 * period):
        still_open = make_request(tenant, "access", "open@example.com")
    tombstone = tombstone_at(tenant, gone.subject_key, NOW - timedelta(days=10))

    deleted = _enforce(tenant)

    requests = PrivacyRequest.objects.for_tenant(tenant)
    assert set(requests.values_list("pk", flat=True)) == {kept.pk, still_open.pk}
    assert deleted["closed_privacy_requests"] == 1
    tombstone.refresh_from_db()  # the proof of the erasure outlives the request record
    assert tombstone.privacy_request_id is None


def test_a_subject_with_an_open_request_is_never_removed_as_inactive(tenant):
    key = consent_at(tenant, "asker@example.com", NOW - 2 * YEAR)
    with at(NOW - 2 * YEAR):
        make_request(tenant, "access", "asker@example.com")

    assert _enforce(tenant)["inactive_subjects"] == 0
    assert ConsentState.objects.for_tenant(tenant).filter(subject_key=key).exists()


def test_an_export_file_goes_once_it_expires_seven_days_after_it_was_made(tenant):
    gone = export_at(tenant, "old@example.com", NOW - timedelta(days=7) - SECOND)
    kept = export_at(tenant, "new@example.com", NOW - timedelta(days=7) + SECOND)
    assert default_storage.exists(gone.path)

    deleted = _enforce(tenant)

    assert deleted["exports"] == 1
    gone.refresh_from_db()
    kept.refresh_from_db()
    assert gone.deleted_at is not None
    assert not default_storage.exists(gone.path)
    assert kept.deleted_at is None
    assert default_storage.exists(kept.path)
    assert DataExport.objects.for_tenant(tenant).count() == 2  # rows stay with the request


def test_a_tombstone_goes_one_second_past_its_period(tenant):
    set_retention_policy(tenant=tenant, category="erasure_tombstones", days=400)
    kept = tombstone_at(tenant, "a" * 64, NOW - timedelta(days=400) + SECOND)
    tombstone_at(tenant, "b" * 64, NOW - timedelta(days=400) - SECOND)

    assert _enforce(tenant)["erasure_tombstones"] == 1
    assert list(ErasureTombstone.objects.for_tenant(tenant)) == [kept]


def test_the_active_artifact_and_the_two_before_it_are_kept_older_ones_destroyed(
        tenant, django_capture_on_commit_callbacks):
    versions = {n: model_version(tenant, n) for n in (1, 2, 3, 4, 6)}
    versions[5] = model_version(tenant, 5, status=ModelVersion.Status.ACTIVE,
                                retention_since=NOW - timedelta(days=30))
    versions[7] = model_version(tenant, 7, status=ModelVersion.Status.CANDIDATE)

    deleted = _enforce(tenant, capture=django_capture_on_commit_callbacks)

    assert deleted["model_artifacts"] == 2
    for number, version in versions.items():
        version.refresh_from_db()
        destroyed = number in (1, 2)
        assert (version.artifact_destroyed_at is not None) is destroyed, number
        assert default_storage.exists(version.artifact_path) is not destroyed, number
    assert ModelVersion.objects.for_tenant(tenant).count() == 7  # the rows stay
    assert _enforce(tenant)["model_artifacts"] == 0


def test_without_an_active_version_the_newest_three_artifacts_are_kept(tenant):
    for number in range(1, 6):
        model_version(tenant, number)
    assert _enforce(tenant)["model_artifacts"] == 2
    kept = ModelVersion.objects.for_tenant(tenant).filter(artifact_destroyed_at__isnull=True)
    assert sorted(kept.values_list("number", flat=True)) == [3, 4, 5]


def test_a_model_trained_on_events_older_than_the_cutoff_is_retrained(
        tenant, django_capture_on_commit_callbacks):
    model_version(tenant, 1, status=ModelVersion.Status.ACTIVE,
                  retention_since=NOW - YEAR - timedelta(days=1))
    events_at(tenant, "sk-model", NOW - YEAR - SECOND, n=2)

    _enforce(tenant, capture=django_capture_on_commit_callbacks)

    state = ServingState.objects.for_tenant(tenant).get()
    assert state.retrain_requested_at == NOW
    assert state.retrain_reason == "retention"


def test_a_model_whose_window_starts_after_the_cutoff_is_left_alone(
        tenant, django_capture_on_commit_callbacks):
    model_version(tenant, 1, status=ModelVersion.Status.ACTIVE,
                  retention_since=NOW - YEAR + timedelta(hours=1))
    events_at(tenant, "sk-model", NOW - YEAR - SECOND, n=2)

    _enforce(tenant, capture=django_capture_on_commit_callbacks)

    state = ServingState.objects.for_tenant(tenant).first()
    assert state is None or state.retrain_requested_at is None


def test_subjects_see_the_tenants_retention_periods(tenant):
    set_retention_policy(tenant=tenant, category="events", days=90)
    set_retention_policy(tenant=tenant, category="closed_privacy_requests", days=1000)

    def retention_rule(tenant, name):
        return retention_notice(get_subject_data_store(name), tenant)

    assert retention_rule(tenant, "events.event").days == 90
    assert "90 days" in retention_rule(tenant, "events.event").text
    assert retention_rule(tenant, "privacy.request").days == 1000
    assert retention_rule(tenant, "privacy.exports").days == 7
