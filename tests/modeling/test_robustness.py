"""No single subject can break or steer training (issue 15): weight caps, quarantine of
anomalous subjects, and fits that fail without touching what serves."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.jobs import DurableJob
from apps.core.subject_data import get_subject_data_store
from apps.events.models import Event, Item
from apps.modeling.config import DEFAULTS, modeling_settings
from apps.modeling.models import ModelVersion, ServingState, SubjectQuarantine, TrainingRun
from apps.modeling.recommenders.als import AlsRecommender
from apps.modeling.services import (
    erase_subject,
    execute_training_run,
    recommend_for_subject,
    start_due_retrains,
    train_model,
)
from apps.modeling.services.dataset import snapshot_training_data
from apps.modeling.services.quarantine import release_subject, volume_threshold
from tests.factories.events import grant_consent
from tests.factories.modeling import add_events, add_items, configure, planted_dataset
from tests.factories.tenants import MembershipFactory


@pytest.fixture
def planted(tenant):
    configure(tenant)
    return planted_dataset(tenant)


def _flood(tenant, key: str, count: int, items: list[str]) -> None:
    """``count`` purchases by one subject, cycling over ``items``, all within the window."""
    pks = dict(Item.objects.for_tenant(tenant).filter(external_id__in=items)
               .values_list("external_id", "pk"))
    now = timezone.now()
    Event.objects.bulk_create([
        Event(tenant=tenant, event_id=uuid.uuid4().hex, subject_key=key,
              item_id=pks[items[n % len(items)]], type="purchase",
              occurred_at=now - timedelta(minutes=20_000) + timedelta(seconds=n))
        for n in range(count)], batch_size=2000)


def _row(data, key: str) -> dict[int, float]:
    row = data.user_keys.index(key)
    start, end = data.matrix.indptr[row], data.matrix.indptr[row + 1]
    return dict(zip(data.item_ids[data.matrix.indices[start:end]].tolist(),
                    data.matrix.data[start:end].tolist(), strict=True))


# --- Quarantine ------------------------------------------------------------------------------


def _median_volume(data) -> float:
    return float(np.median(np.diff(data.matrix.indptr)))  # one event per (subject, item)


def test_a_subject_sending_1000x_the_median_volume_is_quarantined_and_left_out(planted):
    tenant = planted.tenant
    median = _median_volume(snapshot_training_data(tenant=tenant))
    bot = grant_consent(tenant, "bot")
    _flood(tenant, bot, int(1000 * median), planted.groups[0])

    version = train_model(tenant=tenant)

    record = SubjectQuarantine.objects.for_tenant(tenant).get()
    assert (record.subject_key, record.reason, record.released_at) == (bot, "volume", None)
    assert record.figures["events"] == int(1000 * median)
    assert record.figures["median"] == median
    assert record.figures["threshold"] < record.figures["events"]
    assert version.data_stats["subjects_quarantined"] == 1
    assert version.data_stats["subjects_consented"] == len(planted.subjects)
    assert not recommend_for_subject(tenant=tenant, subject_key=bot).personalized
    entry = AuditEvent.objects.for_tenant(tenant).get(action="modeling.subject_quarantined")
    assert entry.details["events"] == record.figures["events"]
    # The next snapshot leaves them out too, without a second finding.
    data = snapshot_training_data(tenant=tenant)
    assert bot not in data.user_keys
    assert data.quarantine == []
    assert data.stats["subjects_quarantined"] == 1
    train_model(tenant=tenant)
    assert SubjectQuarantine.objects.for_tenant(tenant).count() == 1


def test_heavy_subjects_of_a_small_tenant_are_not_quarantined(tenant):
    configure(tenant)
    add_items(tenant, ["a", "b", "c"])
    for n in range(5):
        add_events(tenant, f"s{n}", ["a"], subject_key=grant_consent(tenant, f"s{n}"))
    heavy = grant_consent(tenant, "heavy")
    _flood(tenant, heavy, 400, ["a", "b", "c"])  # 400x the median, under the 500 minimum

    data = snapshot_training_data(tenant=tenant)

    assert heavy in data.user_keys
    assert data.quarantine == []


def test_the_threshold_is_the_highest_of_multiplier_mad_and_minimum(tenant):
    cfg = modeling_settings(configure(tenant, model_quarantine_min_events=10,
                                      model_quarantine_multiplier=100))
    assert volume_threshold(np.array([4, 5, 5, 6, 100]), cfg).threshold == 500.0
    wide = volume_threshold(np.array([1, 1, 1, 40, 80, 90, 95]), cfg)
    assert (wide.median, wide.mad, wide.threshold) == (40, 39, 4000)
    assert volume_threshold(np.array([0.1, 0.1]), cfg).threshold == 10.0
    # With a low multiplier, the MAD term keeps a widely spread tenant's tail unflagged.
    low = modeling_settings(configure(tenant, model_quarantine_multiplier=2))
    assert volume_threshold(np.array([1, 1, 1, 40, 80, 90, 95]), low).threshold == (
        pytest.approx(40 + 10 * 1.4826 * 39))
    assert volume_threshold(np.array([]), cfg).threshold == 10.0


def test_a_released_subject_is_trained_on_again_until_their_volume_doubles(
        planted, client):
    tenant = planted.tenant
    bot = grant_consent(tenant, "bot")
    _flood(tenant, bot, 8000, planted.groups[0])
    train_model(tenant=tenant)
    record = SubjectQuarantine.objects.for_tenant(tenant).get()

    viewer = MembershipFactory(tenant=tenant, role="viewer").user
    client.force_login(viewer)
    client.post("/admin/modeling/subjectquarantine/",
                {"action": "release_selected", "_selected_action": [record.pk]})
    record.refresh_from_db()
    assert record.released_at is None  # a viewer may look, not release

    owner = MembershipFactory(tenant=tenant).user
    client.force_login(owner)
    page = client.get("/admin/modeling/subjectquarantine/")
    assert page.status_code == 200
    assert bot[:12] in page.content.decode()
    assert "8000" in page.content.decode()
    response = client.post("/admin/modeling/subjectquarantine/",
                           {"action": "release_selected", "_selected_action": [record.pk]})
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.released_at is not None
    released = AuditEvent.objects.for_tenant(tenant).get(action="modeling.subject_released")
    assert released.actor_id == str(owner.pk)
    assert AuditEvent.objects.for_tenant(tenant).filter(
        action="admin.subject_data_viewed", details__model="modeling.SubjectQuarantine").exists()

    data = snapshot_training_data(tenant=tenant)  # same volume: not quarantined again
    assert bot in data.user_keys
    assert data.quarantine == []
    assert release_subject(tenant=tenant, quarantine=record).released_at == record.released_at

    _flood(tenant, bot, 8001, planted.groups[1])  # more than twice the volume released
    train_model(tenant=tenant)
    assert SubjectQuarantine.objects.for_tenant(tenant).filter(
        subject_key=bot, released_at__isnull=True).get().figures["events"] == 16001


def test_quarantine_records_are_exported_and_erased_with_the_subject(planted):
    tenant = planted.tenant
    bot = grant_consent(tenant, "bot")
    _flood(tenant, bot, 8000, planted.groups[0])
    train_model(tenant=tenant)
    store = get_subject_data_store("modeling.quarantine")

    exported = store.export(tenant, bot)

    assert [(r["reason"], r["figures"]["events"], r["released_at"]) for r in exported] == [
        ("volume", 8000, None)]
    assert store.export(tenant, planted.keys[planted.subjects[0]]) == []
    assert store.erase(tenant, bot) == 1
    assert not SubjectQuarantine.objects.for_tenant(tenant).exists()


def test_other_tenants_never_see_or_release_a_quarantine(planted, other_tenant, client):
    bot = grant_consent(planted.tenant, "bot")
    _flood(planted.tenant, bot, 8000, planted.groups[0])
    train_model(tenant=planted.tenant)
    record = SubjectQuarantine.objects.for_tenant(planted.tenant).get()
    stranger = MembershipFactory(tenant=other_tenant).user
    client.force_login(stranger)

    page = client.get("/admin/modeling/subjectquarantine/")
    client.post("/admin/modeling/subjectquarantine/",
                {"action": "release_selected", "_selected_action": [record.pk]})

    assert bot[:12] not in page.content.decode()
    record.refresh_from_db()
    assert record.released_at is None


# --- Weight caps -----------------------------------------------------------------------------


def test_a_cell_is_capped_and_a_heavy_row_scaled_down_keeping_its_shape(planted):
    tenant = planted.tenant
    heavy = grant_consent(tenant, "heavy")
    items = planted.groups[2][:3]
    _flood(tenant, heavy, 60, items[:1])             # 60 purchases of one item: 480
    add_events(tenant, "heavy", items[1:], subject_key=heavy)  # 8 each
    pk = {i: planted.item_pk(i) for i in items}

    capped = snapshot_training_data(tenant=tenant)
    assert _row(capped, heavy) == {pk[items[0]]: 100.0, pk[items[1]]: 8.0,
                                   pk[items[2]]: 8.0}
    assert capped.stats["cells_capped"] == 1

    configure(tenant, model_max_subject_weight=80.0)
    scaled = snapshot_training_data(tenant=tenant)
    row = _row(scaled, heavy)
    assert sum(row.values()) == pytest.approx(80.0)
    assert row[pk[items[0]]] / row[pk[items[1]]] == pytest.approx(100 / 8)
    assert scaled.stats["subjects_weight_scaled"] == 1
    # Everyone else's weights are the same to the bit.
    without = snapshot_training_data(tenant=tenant, exclude_subjects=frozenset({heavy}))
    rows = [k for k in scaled.user_keys if k != heavy]
    assert rows == without.user_keys
    assert all(_row(scaled, k) == _row(without, k) for k in rows)


def test_an_absurd_value_stored_before_validation_cannot_break_the_matrix(planted):
    tenant = planted.tenant
    rater = grant_consent(tenant, "rater")
    add_events(tenant, "rater", planted.groups[3][:2], type="rating", value=1e308,
               subject_key=rater)
    add_events(tenant, "rater", planted.groups[3][:1], type="rating", value=1e308,
               subject_key=rater, start_minutes_ago=500)  # the sum overflows to infinity

    data = snapshot_training_data(tenant=tenant)

    assert np.isfinite(data.matrix.data).all()
    assert max(_row(data, rater).values()) == 100.0
    assert train_model(tenant=tenant).status == ModelVersion.Status.ACTIVE


@pytest.mark.parametrize("bad", [-5, 0, "lots", True, None, 1e30])
def test_bad_cap_and_quarantine_settings_fall_back_to_the_defaults(tenant, bad):
    names = ["model_max_cell_weight", "model_max_subject_weight", "model_quarantine_multiplier",
             "model_quarantine_min_events"]
    cfg = modeling_settings(configure(tenant, **dict.fromkeys(names, bad)))
    assert (cfg.max_cell_weight, cfg.max_subject_weight, cfg.quarantine_multiplier,
            cfg.quarantine_min_events) == tuple(DEFAULTS[n] for n in names)
    assert modeling_settings(configure(tenant, model_max_subject_weight=50)
                             ).max_subject_weight == 50.0


# --- A fit that fails ------------------------------------------------------------------------


def _serving(tenant, key: str) -> tuple:
    state = ServingState.objects.for_tenant(tenant).get()
    return (state.active_version_id, state.active_revision,
            recommend_for_subject(tenant=tenant, subject_key=key).as_dict())


def test_a_fit_that_diverges_fails_its_run_and_leaves_serving_unchanged(planted, monkeypatch):
    tenant = planted.tenant
    first = train_model(tenant=tenant)
    key = planted.keys[planted.subjects[0]]
    before = _serving(tenant, key)
    fit_full = AlsRecommender.fit_full

    def diverged(self, matrix):
        model = fit_full(self, matrix)
        model.estimator.item_factors[0, 0] = np.nan
        return model

    monkeypatch.setattr(AlsRecommender, "fit_full", diverged)
    run = TrainingRun.objects.create(tenant=tenant)

    assert execute_training_run(tenant_id=tenant.pk, run_id=run.pk) is None

    run.refresh_from_db()
    assert run.status == DurableJob.Status.FAILED
    assert run.last_error.startswith("fit_not_finite: The als fit produced non-finite")
    assert list(ModelVersion.objects.for_tenant(tenant).values_list("pk", "status")) == [
        (first.pk, ModelVersion.Status.ACTIVE)]
    assert _serving(tenant, key) == before


@pytest.mark.parametrize("error", [MemoryError, SoftTimeLimitExceeded])
def test_a_fit_that_raises_leaves_serving_unchanged_and_never_holds_back_an_erasure(
        planted, monkeypatch, django_capture_on_commit_callbacks, error):
    tenant = planted.tenant
    first = train_model(tenant=tenant)
    kept, erased = (planted.keys[s] for s in planted.subjects[:2])
    before = _serving(tenant, kept)

    def fails(self, matrix):
        raise error  # out of memory, or the task's soft time limit

    with monkeypatch.context() as patched:
        patched.setattr(AlsRecommender, "fit_full", fails)
        run = TrainingRun.objects.create(tenant=tenant)
        execute_training_run(tenant_id=tenant.pk, run_id=run.pk)
    run.refresh_from_db()
    assert run.status == DurableJob.Status.PENDING  # the sweeper retries a fault
    assert run.last_error.startswith(f"{error.__name__} after")
    first.refresh_from_db()
    assert first.status == ModelVersion.Status.ACTIVE
    assert _serving(tenant, kept) == before

    # The subject is erased meanwhile: the retrain it asks for runs now, on what remains.
    with django_capture_on_commit_callbacks(execute=True):
        erase_subject(tenant, erased)
        get_subject_data_store("events.event").erase(tenant, erased)
        assert start_due_retrains() == 1
    run.refresh_from_db()
    assert run.status == DurableJob.Status.SUCCEEDED
    retrained = ModelVersion.objects.for_tenant(tenant).get(pk=run.model_version_id)
    assert retrained.status == ModelVersion.Status.ACTIVE
    assert retrained.data_stats["subjects_consented"] == len(planted.subjects) - 1
    assert ServingState.objects.for_tenant(tenant).get().retrain_requested_at is None
