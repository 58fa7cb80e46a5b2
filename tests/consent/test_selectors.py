"""can_use / can_use_many / get_subject_consent_views: the checks every other app relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.consent.models import ConsentState, Purpose, Source, SubjectState
from apps.consent.selectors import (
    add_months,
    can_use,
    can_use_many,
    get_subject_consent,
    get_subject_consent_views,
)
from apps.consent.services import (
    publish_notice,
    record_consents,
    record_objection,
    set_restriction,
)
from tests.factories.consent import PurposeFactory, record_for, subject_key

SK = subject_key("alice")


def test_a_never_seen_subject_gets_the_purpose_defaults(tenant):
    view = get_subject_consent_views(tenant=tenant, subject_keys=[SK])[SK]
    assert view.level == "session"
    assert view.allowed_purposes == {"analytics"}  # legitimate interest, on by default
    assert not view.restricted
    assert not view.objected
    assert not can_use(tenant=tenant, subject_key=SK, purpose="personalization")
    assert not can_use(tenant=tenant, subject_key=SK, purpose="cross_context_ads")


def test_a_withdrawal_takes_effect_on_the_very_next_check(tenant):
    record_for(tenant, SK, level="full", personalization=True)
    assert can_use(tenant=tenant, subject_key=SK, purpose="personalization")
    record_for(tenant, SK, personalization=False)
    assert not can_use(tenant=tenant, subject_key=SK, purpose="personalization")
    assert get_subject_consent_views(tenant=tenant, subject_keys=[SK])[SK].level == "session"


def test_granting_personalization_without_a_chosen_level_means_full(tenant):
    record_for(tenant, SK, personalization=True)
    view = get_subject_consent_views(tenant=tenant, subject_keys=[SK])[SK]
    assert view.level == "full"
    assert "personalization" in view.allowed_purposes


@pytest.mark.parametrize("level", ["session", "off"])
def test_below_full_level_personalization_is_not_usable_even_when_granted(tenant, level):
    record_for(tenant, SK, level=level, personalization=True)
    view = get_subject_consent_views(tenant=tenant, subject_keys=[SK])[SK]
    assert view.level == level
    assert "personalization" not in view.allowed_purposes
    assert not can_use(tenant=tenant, subject_key=SK, purpose="personalization")


def test_a_restricted_subject_can_be_used_for_nothing(tenant):
    record_for(tenant, SK, level="full", personalization=True, cross_context_ads=True)
    set_restriction(tenant=tenant, subject_key=SK, restricted=True)
    view = get_subject_consent_views(tenant=tenant, subject_keys=[SK])[SK]
    assert view.restricted
    assert view.level == "off"
    assert view.allowed_purposes == frozenset()
    for purpose in ("personalization", "analytics", "cross_context_ads"):
        assert not can_use(tenant=tenant, subject_key=SK, purpose=purpose)


def test_an_objection_stops_personalization_and_legitimate_interest_only(tenant):
    record_for(tenant, SK, level="full", personalization=True, cross_context_ads=True)
    PurposeFactory(tenant=tenant, key="billing", legal_basis=Purpose.LegalBasis.CONTRACT,
                   default_granted=True)
    record_objection(tenant=tenant, subject_key=SK)
    view = get_subject_consent_views(tenant=tenant, subject_keys=[SK])[SK]
    assert view.objected
    assert view.level == "session"
    assert view.allowed_purposes == {"cross_context_ads", "billing"}


def test_consent_expires_after_13_months_by_default(tenant, backdated_notices):
    with time_machine.travel(datetime(2025, 1, 31, 12, tzinfo=UTC), tick=False):
        record_for(tenant, SK, personalization=True)
    with time_machine.travel(datetime(2026, 2, 28, 11, tzinfo=UTC), tick=False):
        assert can_use(tenant=tenant, subject_key=SK, purpose="personalization")
    with time_machine.travel(datetime(2026, 2, 28, 12, tzinfo=UTC), tick=False):
        assert not can_use(tenant=tenant, subject_key=SK, purpose="personalization")
        detail = get_subject_consent(tenant=tenant, subject_key=SK)
        personalization = next(p for p in detail.purposes
                               if p.purpose.key == "personalization")
        assert personalization.expired
        assert not personalization.granted
        assert personalization.chosen is True  # the record is kept as proof
        assert detail.view.level == "session"


def test_a_tenant_sets_its_own_expiry_and_zero_means_never(tenant, backdated_notices):
    with time_machine.travel(datetime(2025, 1, 1, tzinfo=UTC), tick=False):
        record_for(tenant, SK, personalization=True)
    with time_machine.travel(datetime(2025, 7, 2, tzinfo=UTC), tick=False):
        tenant.settings = {"consent_expiry_months": 6}
        assert not can_use(tenant=tenant, subject_key=SK, purpose="personalization")
        tenant.settings = {"consent_expiry_months": 0}
        assert can_use(tenant=tenant, subject_key=SK, purpose="personalization")


def test_a_re_grant_restarts_the_expiry_clock(tenant, backdated_notices):
    with time_machine.travel(datetime(2025, 1, 1, tzinfo=UTC), tick=False):
        record_for(tenant, SK, personalization=True)
    with time_machine.travel(datetime(2025, 12, 1, tzinfo=UTC), tick=False):
        record_for(tenant, SK, personalization=True)
    with time_machine.travel(datetime(2026, 6, 1, tzinfo=UTC), tick=False):
        assert can_use(tenant=tenant, subject_key=SK, purpose="personalization")


def test_consents_under_an_earlier_notice_need_renewal_after_a_material_change(tenant):
    record_for(tenant, SK, personalization=True, cross_context_ads=True)
    publish_notice(tenant=tenant, version="v2", text="New, materially different text.",
                   purpose_keys=["personalization"], require_renewal=True)
    detail = get_subject_consent(tenant=tenant, subject_key=SK)
    states = {p.purpose.key: p for p in detail.purposes}
    assert states["personalization"].needs_renewal
    assert not states["personalization"].granted
    assert not states["cross_context_ads"].needs_renewal  # v2 does not cover it
    assert not can_use(tenant=tenant, subject_key=SK, purpose="personalization")
    record_for(tenant, SK, personalization=True)  # renewed under the current notice, v2
    assert can_use(tenant=tenant, subject_key=SK, purpose="personalization")
    assert get_subject_consent(tenant=tenant, subject_key=SK).purposes[2].notice_version == "v2"


def test_an_unknown_purpose_allows_nobody(tenant):
    record_for(tenant, SK, personalization=True)
    assert can_use_many(tenant=tenant, subject_keys=[SK], purpose="nope") == set()


def test_batch_can_use_for_1000_subjects_costs_a_constant_number_of_queries(
        tenant, django_assert_max_num_queries):
    keys = [subject_key(n) for n in range(1000)]
    personalization = Purpose.objects.for_tenant(tenant).get(key="personalization")
    now = datetime.now(UTC)
    ConsentState.objects.bulk_create([
        ConsentState(tenant=tenant, subject_key=k, purpose=personalization, granted=n % 2 == 0,
                     source=Source.IMPORT, captured_at=now) for n, k in enumerate(keys)])
    SubjectState.objects.bulk_create([
        SubjectState(tenant=tenant, subject_key=k, restricted=True) for k in keys[:10]])
    can_use_many(tenant=tenant, subject_keys=keys[:1], purpose="personalization")  # memo
    with django_assert_max_num_queries(2):  # subject flags, purpose states
        allowed = can_use_many(tenant=tenant, subject_keys=keys, purpose="personalization")
    assert allowed == {k for n, k in enumerate(keys) if n % 2 == 0 and n >= 10}
    with django_assert_max_num_queries(2):
        views = get_subject_consent_views(tenant=tenant, subject_keys=keys)
    assert len(views) == 1000
    assert views[keys[0]].restricted
    assert views[keys[0]].level == "off"
    assert views[keys[12]].level == "full"


def test_another_tenants_consent_is_invisible(tenant, other_tenant):
    record_for(other_tenant, SK, level="full", personalization=True)
    set_restriction(tenant=other_tenant, subject_key=SK, restricted=True)
    view = get_subject_consent_views(tenant=tenant, subject_keys=[SK])[SK]
    assert view == get_subject_consent_views(tenant=tenant, subject_keys=[subject_key(9)])[
        subject_key(9)]
    assert not view.restricted
    assert get_subject_consent(tenant=tenant, subject_key=SK).history == []


@pytest.mark.parametrize(("start", "months", "expected"), [
    (datetime(2025, 1, 31, tzinfo=UTC), 1, datetime(2025, 2, 28, tzinfo=UTC)),
    (datetime(2024, 1, 31, tzinfo=UTC), 1, datetime(2024, 2, 29, tzinfo=UTC)),
    (datetime(2025, 3, 15, 8, 30, tzinfo=UTC), 13, datetime(2026, 4, 15, 8, 30, tzinfo=UTC)),
    (datetime(2025, 12, 1, tzinfo=UTC), 1, datetime(2026, 1, 1, tzinfo=UTC)),
])
def test_add_months_follows_the_calendar(start, months, expected):
    assert add_months(start, months) == expected


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(decisions=st.lists(
    st.tuples(st.sampled_from(["personalization", "analytics", "cross_context_ads"]),
              st.booleans()), min_size=1, max_size=8))
def test_the_current_state_is_always_the_last_decision_per_purpose(tenant, decisions):
    key = subject_key(f"hyp{abs(hash(tuple(decisions)))}")
    ConsentState.objects.for_tenant(tenant).filter(subject_key=key).delete()
    for purpose, granted in decisions:
        record_consents(tenant=tenant, subject_key=key, decisions={purpose: granted})
    last = dict(decisions)
    view = get_subject_consent_views(tenant=tenant, subject_keys=[key])[key]
    for purpose, granted in last.items():
        expected = granted and (purpose != "personalization" or view.level == "full")
        assert (purpose in view.allowed_purposes) == expected
    stored = dict(ConsentState.objects.for_tenant(tenant).filter(subject_key=key)
                  .values_list("purpose__key", "granted"))
    assert stored == last


def test_views_ignore_duplicate_keys_and_empty_input(tenant):
    assert get_subject_consent_views(tenant=tenant, subject_keys=[]) == {}
    assert list(get_subject_consent_views(tenant=tenant, subject_keys=[SK, SK])) == [SK]
    assert can_use_many(tenant=tenant, subject_keys=[], purpose="analytics") == set()


def test_expiry_applies_to_consent_not_to_legitimate_interest(tenant, backdated_notices):
    with time_machine.travel(datetime(2020, 1, 1, tzinfo=UTC), tick=False):
        record_for(tenant, SK, analytics=True)
    assert can_use(tenant=tenant, subject_key=SK, purpose="analytics")
    assert datetime.now(UTC) - datetime(2020, 1, 1, tzinfo=UTC) > timedelta(days=400)


def test_a_malformed_expiry_setting_falls_back_to_the_default(tenant):
    record_for(tenant, SK, personalization=True)
    tenant.settings = {"consent_expiry_months": "thirteen"}
    assert can_use(tenant=tenant, subject_key=SK, purpose="personalization")


@given(captured=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1),  # noqa: DTZ001 - naive bounds, UTC values
                             timezones=st.just(UTC)),
       months=st.integers(min_value=1, max_value=240))
def test_months_last_at_least_28_days_each(captured, months):
    """The batch path skips the calendar for consents younger than 28 days per month of
    expiry; that is only right if no span of calendar months is shorter."""
    assert add_months(captured, months) - captured >= timedelta(days=28 * months)


# --- One subject's plain-SQL reads (formerly apps/core/compiled.py) -------------------------


def test_one_subjects_plain_sql_rows_equal_the_orms(tenant, other_tenant):
    """A request's consent check (one statement: flags and states) and the detail's state
    statement return what the batch path (the ORM) would, converted the same way (bool,
    aware datetime), on both backends; only the asked tenant's rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.consent.selectors import _one_subject, _state_rows, _subject_flags

    key, other_key, bare_key = (subject_key("plain-a"), subject_key("plain-b"),
                                subject_key("plain-c"))
    record_consents(tenant=tenant, subject_key=key, decisions={"personalization": True},
                    level="full")
    set_restriction(tenant=tenant, subject_key=key, restricted=True)
    record_consents(tenant=other_tenant, subject_key=key,
                    decisions={"personalization": False}, level="off")
    personalization = Purpose.objects.for_tenant(tenant).get(key="personalization")
    ConsentState.objects.create(  # states without a SubjectState row
        tenant=tenant, subject_key=bare_key, purpose=personalization, granted=True,
        source=Source.IMPORT, captured_at=datetime.now(UTC))
    purposes = list(Purpose.objects.for_tenant(tenant).values_list("pk", flat=True))
    for t, k in [(tenant, key), (tenant, other_key), (other_tenant, key), (tenant, bare_key)]:
        flags, states = _one_subject(t, k, purposes)
        assert flags == {kk: v for kk, v in _subject_flags(t, [k, "z" * 64]).items() if kk == k}
        # The batch path (two keys) is the ORM's own: both agree on every field.
        batch = _state_rows(t, [k, "z" * 64], purposes, proof=True)
        assert states == {kk: v for kk, v in batch.items() if kk == k}
        assert _state_rows(t, [k], purposes) == states  # the detail's single statement
        for state in states.get(k, {}).values():
            assert state.granted is True or state.granted is False
            assert state.captured_at.tzinfo is not None
    assert _one_subject(tenant, key, purposes)[0][key].restricted is True
    assert _one_subject(tenant, bare_key, purposes)[0] == {}
    assert _one_subject(tenant, other_key, purposes) == ({}, {})
    get_subject_consent_views(tenant=tenant, subject_keys=[other_key])  # purposes memoized
    with CaptureQueriesContext(connection) as captured:
        views = get_subject_consent_views(tenant=tenant, subject_keys=[key])
        can_use(tenant=tenant, subject_key=bare_key, purpose="personalization")
    assert views[key].restricted
    assert len(captured.captured_queries) == 2  # one statement per check
