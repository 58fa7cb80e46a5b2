"""Due dates per regime and kind, at the boundaries, with frozen time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from apps.core.exceptions import ApplicationError
from apps.privacy.selectors import get_due_info
from apps.privacy.services import extend_privacy_request
from apps.privacy.services.deadlines import add_business_days, due_state
from tests.factories.privacy import make_request


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _made_at(tenant, when: str, **kwargs):
    with time_machine.travel(at(when), tick=False):
        # A rectification without details waits verified: its clock is what we look at.
        kwargs.setdefault("kind", "rectification")
        return make_request(tenant, **kwargs)


@pytest.mark.parametrize(("received", "due"), [
    ("2025-01-15T10:00:00", "2025-02-15T10:00:00"),
    ("2025-01-31T10:00:00", "2025-02-28T10:00:00"),   # clamped to the month's end
    ("2024-01-31T10:00:00", "2024-02-29T10:00:00"),   # leap year
    ("2025-12-31T23:59:59", "2026-01-31T23:59:59"),   # across the year
])
def test_gdpr_requests_are_due_one_calendar_month_after_receipt(tenant, received, due):
    pr = _made_at(tenant, received, regime="gdpr")
    assert pr.due_at == at(due)
    assert pr.ack_due_at is None


def test_ccpa_requests_are_acknowledged_in_10_business_days_and_answered_in_45_days(tenant):
    pr = _made_at(tenant, "2025-03-07T10:00:00", regime="ccpa")  # a Friday
    assert pr.ack_due_at == at("2025-03-21T10:00:00")  # two weeks later, weekends skipped
    assert pr.due_at == at("2025-04-21T10:00:00")      # 45 calendar days


def test_business_days_start_on_monday_for_a_request_received_on_saturday(tenant):
    pr = _made_at(tenant, "2025-03-08T10:00:00", regime="ccpa")  # a Saturday
    assert pr.ack_due_at == at("2025-03-21T10:00:00")


def test_the_tenants_holidays_are_not_business_days(tenant):
    tenant.settings = {**tenant.settings, "privacy_holidays": ["2025-03-10", "bad"]}
    tenant.save()
    pr = _made_at(tenant, "2025-03-07T10:00:00", regime="ccpa")
    assert pr.ack_due_at == at("2025-03-24T10:00:00")


@pytest.mark.parametrize("regime", ["ccpa", "gdpr"])
@pytest.mark.parametrize("kind", ["opt_out", "limit_sensitive"])
def test_opt_out_and_limit_requests_are_due_in_15_business_days(tenant, regime, kind):
    pr = _made_at(tenant, "2025-03-03T09:00:00", regime=regime, kind=kind)  # a Monday
    assert pr.due_at == at("2025-03-24T09:00:00")
    assert pr.status == "completed"  # and applied at once


def test_add_business_days_counts_weekdays_only():
    friday = at("2025-03-07T10:00:00")
    assert add_business_days(friday, 1) == at("2025-03-10T10:00:00")
    assert add_business_days(friday, 5) == at("2025-03-14T10:00:00")
    assert add_business_days(friday, 0) == friday


def test_a_gdpr_extension_adds_two_months_if_decided_within_the_first_month(tenant):
    pr = _made_at(tenant, "2025-01-31T10:00:00", regime="gdpr")
    with time_machine.travel(at("2025-02-28T09:59:59"), tick=False):
        extend_privacy_request(privacy_request=pr, reason="Many requests at once.")
    pr.refresh_from_db()
    assert pr.due_at == at("2025-04-30T10:00:00")
    assert pr.original_due_at == at("2025-02-28T10:00:00")
    assert pr.status == "verified"  # recorded beside the status
    assert pr.extension_reason == "Many requests at once."


def test_a_gdpr_extension_after_the_first_month_is_refused(tenant):
    pr = _made_at(tenant, "2025-01-15T10:00:00", regime="gdpr")
    with time_machine.travel(at("2025-02-15T10:00:00"), tick=False), \
            pytest.raises(ApplicationError) as refused:
        extend_privacy_request(privacy_request=pr, reason="Too late.")
    assert refused.value.code == "extension_too_late"


def test_a_ccpa_extension_adds_45_days_once_and_needs_a_reason(tenant):
    pr = _made_at(tenant, "2025-03-07T10:00:00", regime="ccpa")
    with time_machine.travel(at("2025-04-21T09:59:59"), tick=False):
        with pytest.raises(ApplicationError) as no_reason:
            extend_privacy_request(privacy_request=pr, reason="  ")
        assert no_reason.value.code == "reason_required"
        extend_privacy_request(privacy_request=pr, reason="Complex request.")
        with pytest.raises(ApplicationError) as twice:
            extend_privacy_request(privacy_request=pr, reason="Again.")
        assert twice.value.code == "already_extended"
    pr.refresh_from_db()
    assert pr.due_at == at("2025-06-05T10:00:00")


def test_opt_out_requests_cannot_be_extended(tenant):
    pr = _made_at(tenant, "2025-03-03T09:00:00", kind="opt_out", verified=False,
                  channel="mail")
    with pytest.raises(ApplicationError):
        extend_privacy_request(privacy_request=pr, reason="No.")


def test_overdue_and_at_risk_switch_at_the_exact_moments(tenant):
    pr = _made_at(tenant, "2025-01-15T10:00:00", regime="gdpr")
    due = at("2025-02-15T10:00:00")
    assert get_due_info(pr, due - timedelta(days=7, seconds=1)).state == "on_track"
    assert get_due_info(pr, due - timedelta(days=7)).state == "at_risk"
    assert get_due_info(pr, due).state == "at_risk"
    assert get_due_info(pr, due).days_left == 0
    assert get_due_info(pr, due + timedelta(seconds=1)).state == "overdue"
    assert get_due_info(pr, due + timedelta(seconds=1)).days_left == -1
    assert get_due_info(pr, due - timedelta(days=3, hours=1)).days_left == 3


def test_a_closed_request_is_never_overdue():
    assert due_state(due_at=at("2025-01-01T00:00:00"), now=at("2026-01-01T00:00:00"),
                     is_open=False) == "closed"
