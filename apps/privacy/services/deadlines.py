"""The clocks of a request. Pure functions of UTC datetimes (DESIGN "Time"): tests freeze
time and check the boundaries. Which clock a kind has under each regime (GDPR Art. 12(3),
CCPA regulations §7021, §7026(f), §7027(g)) is declared in the kinds table
(:mod:`apps.privacy.kinds`); this module only counts.

Business days are Monday to Friday in UTC, minus the tenant's holidays
(``Tenant.settings["privacy_holidays"]``: a list of ISO dates).
"""

from __future__ import annotations

import calendar
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from apps.privacy.kinds import ClockRule, get_kind

#: An open request with this many days left or fewer is "at risk" (tenant setting
#: ``privacy_at_risk_days`` overrides).
DEFAULT_AT_RISK_DAYS = 7


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def is_business_day(day: date, holidays: Collection[date] = ()) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(moment: datetime, days: int, holidays: Collection[date] = ()) -> datetime:
    """``days`` business days after ``moment``, at the same time of day: a request received
    on Friday 10:00 has 10 business days until Friday 10:00 two weeks later; one received on
    a Saturday starts counting on Monday."""
    current = moment
    left = days
    while left > 0:
        current += timedelta(days=1)
        if is_business_day(current.date(), holidays):
            left -= 1
    return current


def parse_holidays(raw: object) -> frozenset[date]:
    days: set[date] = set()
    if isinstance(raw, list | tuple):
        for value in raw:
            try:
                days.add(date.fromisoformat(str(value)))
            except ValueError:
                continue
    return frozenset(days)


@dataclass(frozen=True)
class Clock:
    due_at: datetime
    ack_due_at: datetime | None
    #: The due date after the one allowed extension (None: not extendable).
    extended_due_at: datetime | None
    #: An extension must be decided (and sent to the subject) before this moment.
    extension_deadline: datetime | None


def compute_clock(*, regime: str, kind: str, received_at: datetime,
                  holidays: Collection[date] = ()) -> Clock:
    """The clock of a ``kind`` request received at ``received_at`` under ``regime``, as
    the kinds table declares it (an unknown kind or unmapped regime is refused)."""
    return clock_of(get_kind(kind).clock(regime), received_at, holidays)


def clock_of(rule: ClockRule, received_at: datetime, holidays: Collection[date] = ()) -> Clock:
    def after(units: int) -> datetime:
        if rule.unit == "months":
            return add_months(received_at, units)
        if rule.unit == "business_days":
            return add_business_days(received_at, units, holidays)
        if rule.unit == "days":
            return received_at + timedelta(days=units)
        raise ValueError(f"unknown clock unit {rule.unit!r}")

    due = after(rule.answer)
    ack = (None if rule.acknowledge_business_days is None
           else add_business_days(received_at, rule.acknowledge_business_days, holidays))
    if rule.extension is None:
        return Clock(due, ack, None, None)
    # Counted from receipt: 31 Jan + 1 + 2 months is 30 April, not 28 April.
    return Clock(due, ack, after(rule.answer + rule.extension), due)


def days_left(due_at: datetime, now: datetime) -> int:
    """Whole days until ``due_at`` (negative once overdue): 0 on the last day."""
    seconds = (due_at - now).total_seconds()
    return int(seconds // 86400)


def due_state(*, due_at: datetime, now: datetime, is_open: bool,
              at_risk_days: int = DEFAULT_AT_RISK_DAYS) -> str:
    """``closed``, ``overdue`` (past the due moment), ``at_risk`` (due within
    ``at_risk_days``) or ``on_track``."""
    if not is_open:
        return "closed"
    if now > due_at:
        return "overdue"
    if due_at - now <= timedelta(days=at_risk_days):
        return "at_risk"
    return "on_track"
