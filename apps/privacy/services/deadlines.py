"""The clocks of a request, per regime and kind. Pure functions of UTC datetimes (DESIGN
"Time"): tests freeze time and check the boundaries.

* GDPR Art. 12(3): answer within one month of receipt; extendable by two further months
  when necessary, telling the subject why within the first month.
* CCPA regulations §7021: acknowledge within 10 business days; answer within 45 calendar
  days, extendable once by 45 more with notice to the consumer within the first 45.
* CCPA §7026(f), §7027(g): opt-out of sale/sharing and "limit" requests within 15 business
  days (whatever the regime: they are applied at once anyway).

Business days are Monday to Friday in UTC, minus the tenant's holidays
(``Tenant.settings["privacy_holidays"]``: a list of ISO dates).
"""

from __future__ import annotations

import calendar
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

GDPR_MONTHS = 1
GDPR_EXTENSION_MONTHS = 2
CCPA_ACK_BUSINESS_DAYS = 10
CCPA_DAYS = 45
CCPA_EXTENSION_DAYS = 45
OPT_OUT_BUSINESS_DAYS = 15
#: An open request with this many days left or fewer is "at risk" (tenant setting
#: ``privacy_at_risk_days`` overrides).
DEFAULT_AT_RISK_DAYS = 7

IMMEDIATE_KINDS = frozenset({"opt_out", "limit_sensitive"})


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
    if kind in IMMEDIATE_KINDS:
        return Clock(add_business_days(received_at, OPT_OUT_BUSINESS_DAYS, holidays),
                     None, None, None)
    if regime == "ccpa":
        due = received_at + timedelta(days=CCPA_DAYS)
        return Clock(due, add_business_days(received_at, CCPA_ACK_BUSINESS_DAYS, holidays),
                     due + timedelta(days=CCPA_EXTENSION_DAYS), due)
    due = add_months(received_at, GDPR_MONTHS)
    return Clock(due, None, add_months(received_at, GDPR_MONTHS + GDPR_EXTENSION_MONTHS), due)


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
