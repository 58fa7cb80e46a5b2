"""Reading consent (STYLE S4): what may be done with a subject's data, right now.

The other apps call :func:`can_use`, :func:`can_use_many` and
:func:`get_subject_consent_views`. Each reads the current-state tables (never the ledger)
with a constant number of indexed queries, whatever the number of subjects, and nothing is
cached across calls: a withdrawal takes effect on the very next check. Callers that check
many purposes for the same subjects within one request should keep the views they got from
:func:`get_subject_consent_views` for that request only.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.consent import tenant_settings as consent_settings
from apps.consent.models import (
    PERSONALIZATION,
    ConsentRecord,
    ConsentState,
    Level,
    PrivacyNotice,
    Purpose,
    SubjectState,
)
from apps.core.db import fetch_rows_matching, hot_statement_cursor
from apps.core.exceptions import ApplicationError
from apps.tenants.config_memo import memoize_tenant_config
from apps.tenants.models import Tenant
from apps.tenants.services import setting_value

logger = logging.getLogger("consent")

#: Tenant settings (``tenant.settings`` JSON) and their platform defaults.
# Declared in apps/consent/tenant_settings.py.
EXPIRY_SETTING = consent_settings.EXPIRY_MONTHS.name
DEFAULT_EXPIRY_MONTHS = consent_settings.EXPIRY_MONTHS.default  # 0 means "never expires"
OBJECTION_SETTING = consent_settings.OBJECTION_QUIET_DAYS.name
DEFAULT_OBJECTION_QUIET_DAYS = consent_settings.OBJECTION_QUIET_DAYS.default

#: Subjects per IN (...) list: far below SQLite's 32,766 bound parameters, and large enough
#: that an ingestion batch is one query per table.
CHUNK_SIZE = 5000
HISTORY_LIMIT = 200


@dataclass(frozen=True)
class SubjectConsentView:
    """What other apps need to know about one subject, evaluated now."""

    level: str                        # "off" | "session" | "full" (effective level)
    restricted: bool                  # Art. 18: keep data, do not use for training/serving
    objected: bool                    # Art. 21 objection to personalization
    allowed_purposes: frozenset[str]  # purpose keys usable now
    #: purpose keys whose decision (or default) is in effect as a grant, before flags and
    #: level: tells "chose a lower level" from "never consented" without another query
    granted_purposes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PurposeConsent:
    """One purpose's state for one subject, with the proof behind it (for the API/admin)."""

    purpose: Purpose
    chosen: bool | None          # the subject's last recorded decision; None = never chose
    granted: bool                # in effect: the decision (or default), unless expired/renew
    allowed: bool                # usable now, also counting flags and level
    notice_version: str | None
    source: str                  # ledger source, or "default"
    method: str
    at: datetime | None
    expires_at: datetime | None
    expired: bool
    needs_renewal: bool


@dataclass(frozen=True)
class SubjectConsentDetail:
    view: SubjectConsentView
    purposes: list[PurposeConsent]
    chosen_level: str | None
    do_not_ask_until: datetime | None
    gpc: bool
    history: list[ConsentRecord]
    history_truncated: bool


class _StateRow(NamedTuple):
    """One current-state row (a tuple: thousands are built per ingestion batch)."""

    purpose_id: int
    granted: bool
    notice_version: str | None
    notice_effective_at: datetime | None
    source: str
    method: str
    captured_at: datetime


_STATE_FIELDS = ("subject_key", "purpose_id", "granted", "notice__version",
                 "notice__effective_at", "source", "method", "captured_at")
_PLAIN_STATE_FIELDS = ("subject_key", "purpose_id", "granted", "captured_at")
_FLAG_FIELDS = ("subject_key", "level", "restricted", "objected")

# One subject's flags and current-state rows, the reads of a request's consent check, as
# plain SQL with bound parameters. Building and compiling even these one-row index
# probes through the ORM cost Django about a millisecond each on our 2-core hardware, more
# than the database takes to answer them. Columns in the order of the field tuples above.
# A request's consent check reads both in one statement: the subject's flags (NULL when it
# has no row) beside each of its current-state rows (one row of NULLs when it has none).
_ONE_SUBJECT_CHECK_SQL = (
    'SELECT f."level", f."restricted", f."objected", s."purpose_id", s."granted", '
    'n."version", n."effective_at", s."source", s."method", s."captured_at" '
    'FROM (SELECT 1 AS "one") o '
    'LEFT OUTER JOIN "consent_subjectstate" f ON f."tenant_id" = %s AND f."subject_key" = %s '
    'LEFT OUTER JOIN "consent_consentstate" s ON s."tenant_id" = %s AND s."subject_key" = %s '
    'LEFT OUTER JOIN "consent_privacynotice" n ON s."notice_id" = n."id"')
_ONE_SUBJECT_STATES_SQL = (
    'SELECT s."subject_key", s."purpose_id", s."granted", n."version", n."effective_at", '
    's."source", s."method", s."captured_at" FROM "consent_consentstate" s '
    'LEFT OUTER JOIN "consent_privacynotice" n ON s."notice_id" = n."id" '
    'WHERE s."tenant_id" = %s AND s."subject_key" = %s')


def _one_subject_rows(sql: str, tenant: Tenant, subject_key: str,
                      datetimes: tuple[int, ...] = (), probes: int = 1
                      ) -> list[tuple[Any, ...]]:
    """Rows of one of the statements above, converted as the ORM would: booleans as
    ``bool``, the columns at ``datetimes`` as aware datetimes (SQLite hands back naive UTC;
    PostgreSQL aware values already). ``probes``: how many (tenant, subject) pairs it binds."""
    with hot_statement_cursor(binary_results=True) as cursor:  # no JSON column
        cursor.execute(sql, [tenant.pk, subject_key] * probes)
        rows = cursor.fetchall()
    if not datetimes or connection.vendor == "postgresql":
        return [tuple(row) for row in rows]
    converted = []
    for row in rows:
        values = list(row)
        for n in datetimes:
            values[n] = _aware(values[n])
        converted.append(tuple(values))
    return converted


def _aware(value: Any) -> Any:
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        return timezone.make_aware(value, connection.timezone)
    return value


# --- Tenant policy -------------------------------------------------------------------------


def get_expiry_months(tenant: Tenant) -> int:
    """Months after which a consent reads as not given (tenant setting; 0 = never). A
    malformed value falls back to the default rather than failing every consent check."""
    return setting_value(tenant, consent_settings.EXPIRY_MONTHS)


def get_objection_quiet_period(tenant: Tenant) -> timedelta:
    """How long after an objection the subject may not be asked again (tenant setting)."""
    return timedelta(days=setting_value(tenant, consent_settings.OBJECTION_QUIET_DAYS))


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


# --- Evaluation ----------------------------------------------------------------------------


def _chunks(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), CHUNK_SIZE):
        yield keys[start:start + CHUNK_SIZE]


def _unique(subject_keys: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(subject_keys))


class _Flags(NamedTuple):
    """The subject-wide part of a decision: what :func:`_evaluate` reads of a SubjectState."""

    level: str
    restricted: bool
    objected: bool


def _one_subject(tenant: Tenant, key: str, purpose_ids: Collection[int]
                 ) -> tuple[dict[str, _Flags], dict[str, dict[int, _StateRow]]]:
    """One subject's flags and current-state rows (of ``purpose_ids``), as
    :func:`_subject_flags` and :func:`_state_rows` return them, in one statement: a request's
    consent check is one round trip."""
    flags: dict[str, _Flags] = {}
    states: dict[int, _StateRow] = {}
    wanted = set(purpose_ids)
    for (level, restricted, objected, purpose_id, granted, version, effective_at, source,
         method, at) in _one_subject_rows(_ONE_SUBJECT_CHECK_SQL, tenant, key,
                                          datetimes=(6, 9), probes=2):
        if level is not None:
            flags[key] = _Flags(level, bool(restricted), bool(objected))
        if purpose_id in wanted:
            states[purpose_id] = _StateRow(purpose_id, bool(granted), version, effective_at,
                                           source, method, at)
    return flags, ({key: states} if states else {})


def _subject_flags(tenant: Tenant, keys: Sequence[str]) -> dict[str, _Flags]:
    """Flags of many subjects as plain tuples: the hot path (one ingestion batch) does not
    pay for building model instances. (One subject: :func:`_one_subject`.)"""
    found: dict[str, _Flags] = {}
    for chunk in _chunks(keys):
        rows = fetch_rows_matching(
            SubjectState.objects.for_tenant(tenant).order_by().values_list(*_FLAG_FIELDS),
            field="subject_key", values=chunk)
        found.update((key, _Flags(*flags)) for key, *flags in rows)
    return found


def _subject_states(tenant: Tenant, keys: Sequence[str]) -> dict[str, SubjectState]:
    found: dict[str, SubjectState] = {}
    for chunk in _chunks(keys):
        qs = SubjectState.objects.for_tenant(tenant).filter(subject_key__in=chunk)
        found.update((s.subject_key, s) for s in qs)
    return found


def _state_rows(tenant: Tenant, keys: Sequence[str], purpose_ids: Collection[int],
                *, proof: bool = True) -> dict[str, dict[int, _StateRow]]:
    """Current-state rows of many subjects. ``proof=False`` (the batch path, when no
    purpose awaits renewal) skips the notice join and the source columns a decision does
    not need. One subject runs a plain statement, with the proof (all its purposes: a
    handful of rows, filtered here)."""
    found: dict[str, dict[int, _StateRow]] = {}
    if not purpose_ids:
        return found
    if len(keys) == 1:
        proof, wanted = True, set(purpose_ids)
        one = _one_subject_rows(_ONE_SUBJECT_STATES_SQL, tenant, keys[0], datetimes=(4, 7))
        rows: Iterable[tuple[Any, ...]] = (row for row in one if row[1] in wanted)
    else:
        fields = _STATE_FIELDS if proof else _PLAIN_STATE_FIELDS
        queryset = (ConsentState.objects.for_tenant(tenant).filter(purpose_id__in=purpose_ids)
                    .order_by().values_list(*fields))
        rows = (row for chunk in _chunks(keys)
                for row in fetch_rows_matching(queryset, field="subject_key", values=chunk))
    for row in rows:
        if proof:
            key, purpose_id, granted, version, effective_at, source, method, at = row
            state = _StateRow(purpose_id, granted, version, effective_at, source, method, at)
        else:
            key, purpose_id, granted, at = row
            state = _StateRow(purpose_id, granted, None, None, "", "", at)
        found.setdefault(key, {})[purpose_id] = state
    return found


def _shortest(months: int) -> timedelta:
    """A lower bound of any ``months`` calendar months (each has at least 28 days): a
    consent younger than this cannot have expired, so the batch path skips the calendar."""
    return timedelta(days=28 * months)


def _any_renewal(purposes: Iterable[Purpose]) -> bool:
    """Whether a decision needs the notice behind each state (a renewal is pending)."""
    return any(p.renewal_required_from_id for p in purposes)


def _needs_renewal(purpose: Purpose, state: _StateRow) -> bool:
    required = purpose.renewal_required_from
    if required is None or not state.granted:
        return False
    return state.notice_effective_at is None or state.notice_effective_at < required.effective_at


def _objection_blocks(purpose: Purpose) -> bool:
    # Art. 21 covers processing on legitimate interest; the objection is to personalization.
    return (purpose.key == PERSONALIZATION
            or purpose.legal_basis == Purpose.LegalBasis.LEGITIMATE_INTEREST)


def _evaluate(
    *,
    purposes: Sequence[Purpose],
    subject: _Flags | SubjectState | None,
    states: dict[int, _StateRow],
    now: datetime,
    expiry_months: int,
    with_details: bool = True,
) -> tuple[SubjectConsentView, list[PurposeConsent]]:
    """The one place that turns stored state into decisions (pure: no queries).
    ``with_details=False`` (the batch path) returns the view alone, with no per-purpose
    detail objects."""
    restricted = bool(subject and subject.restricted)
    objected = bool(subject and subject.objected)
    details: list[PurposeConsent] = []
    allowed_keys: set[str] = set()
    granted_keys: set[str] = set()
    for purpose in purposes:
        state = states.get(purpose.pk)
        expires_at, expired, renewal = None, False, False
        if state is None:
            granted = purpose.default_granted
        else:
            if (state.granted and expiry_months
                    and purpose.legal_basis == Purpose.LegalBasis.CONSENT
                    and (with_details or now - state.captured_at >= _shortest(expiry_months))):
                expires_at = add_months(state.captured_at, expiry_months)
                expired = now >= expires_at
            renewal = _needs_renewal(purpose, state)
            granted = state.granted and not expired and not renewal
        if granted:
            granted_keys.add(purpose.key)
        allowed = granted and not restricted and not (objected and _objection_blocks(purpose))
        if allowed:
            allowed_keys.add(purpose.key)
        if not with_details:
            continue
        details.append(PurposeConsent(
            purpose=purpose,
            chosen=None if state is None else state.granted,
            granted=granted,
            allowed=allowed,
            notice_version=state.notice_version if state else None,
            source=state.source if state else "default",
            method=state.method if state else "",
            at=state.captured_at if state else None,
            expires_at=expires_at,
            expired=expired,
            needs_renewal=renewal,
        ))
    level = effective_level(
        chosen=subject.level if subject else "",
        personalization_usable=PERSONALIZATION in allowed_keys,
        restricted=restricted,
    )
    if level != Level.FULL and PERSONALIZATION in allowed_keys:
        # Below "full" nothing may be stored or trained on: personalization is not usable.
        allowed_keys.discard(PERSONALIZATION)
        details = [d if d.purpose.key != PERSONALIZATION else replace(d, allowed=False)
                   for d in details]
    view = SubjectConsentView(level=level, restricted=restricted, objected=objected,
                              allowed_purposes=frozenset(allowed_keys),
                              granted_purposes=frozenset(granted_keys))
    return view, details


def effective_level(*, chosen: str, personalization_usable: bool, restricted: bool) -> str:
    """The subject's chosen level, else "full" when personalization is usable, else
    "session"; capped at "session" without personalization and "off" when restricted
    (Art. 18: no use at all, only storage)."""
    if restricted:
        return Level.OFF.value
    level = chosen or (Level.FULL.value if personalization_usable else Level.SESSION.value)
    if level == Level.FULL and not personalization_usable:
        return Level.SESSION.value
    return str(level)


def _purposes(tenant: Tenant, keys: Collection[str] | None = None) -> list[Purpose]:
    """The tenant's purposes by key (with the notice a renewal needs), memoized per
    configuration revision: every consent check reads them."""
    purposes: tuple[Purpose, ...] = memoize_tenant_config(tenant, "purposes", lambda: tuple(
        Purpose.objects.for_tenant(tenant).select_related("renewal_required_from")
        .order_by("key")))
    if keys is None:
        return list(purposes)
    wanted = set(keys)
    return [p for p in purposes if p.key in wanted]


# --- The contract other apps use -----------------------------------------------------------


def get_subject_consent_views(
    *, tenant: Tenant, subject_keys: Collection[str]
) -> dict[str, SubjectConsentView]:
    """Every subject's view, evaluated now, in two queries for up to ``CHUNK_SIZE``
    subjects (subject flags, purpose states; the purposes are memoized per configuration
    revision), one for a single subject. Subjects never seen get defaults."""
    keys = _unique(subject_keys)
    if not keys:
        return {}
    purposes = _purposes(tenant)
    if len(keys) == 1:  # a request's check: one statement
        subjects, states = _one_subject(tenant, keys[0], [p.pk for p in purposes])
    else:
        subjects = _subject_flags(tenant, keys)
        states = _state_rows(tenant, keys, [p.pk for p in purposes],
                             proof=_any_renewal(purposes))
    now, months = timezone.now(), get_expiry_months(tenant)
    return {
        key: _evaluate(purposes=purposes, subject=subjects.get(key), states=states.get(key, {}),
                       now=now, expiry_months=months, with_details=False)[0]
        for key in keys
    }


def can_use_many(*, tenant: Tenant, subject_keys: Collection[str], purpose: str) -> set[str]:
    """The subset of ``subject_keys`` whose data may be used for ``purpose`` now. Constant
    number of queries. An unknown purpose allows nobody (fail closed)."""
    keys = _unique(subject_keys)
    if not keys:
        return set()
    purposes = _purposes(tenant, [purpose])
    if not purposes:
        return set()
    if len(keys) == 1:  # a request's check: one statement
        subjects, states = _one_subject(tenant, keys[0], [purposes[0].pk])
    else:
        subjects = _subject_flags(tenant, keys)
        states = _state_rows(tenant, keys, [purposes[0].pk], proof=_any_renewal(purposes))
    now, months = timezone.now(), get_expiry_months(tenant)
    allowed = set()
    for key in keys:
        view, _ = _evaluate(purposes=purposes, subject=subjects.get(key),
                            states=states.get(key, {}), now=now, expiry_months=months,
                            with_details=False)
        if purpose in view.allowed_purposes:
            allowed.add(key)
    return allowed


def can_use(*, tenant: Tenant, subject_key: str, purpose: str) -> bool:
    """Whether one subject's data may be used for ``purpose`` now (False when restricted,
    objected to, withdrawn, expired, awaiting renewal, or an unknown purpose)."""
    return bool(can_use_many(tenant=tenant, subject_keys=[subject_key], purpose=purpose))


def has_usable_consent(*, tenant: Tenant, subject_key: str, purpose: str) -> bool:
    """Alias named per STYLE S16 (``has_*``)."""
    return can_use(tenant=tenant, subject_key=subject_key, purpose=purpose)


def list_restricted_subjects(*, tenant: Tenant) -> QuerySet[SubjectState]:
    """Subjects whose processing is restricted (GDPR Art. 18): their data is kept and left
    out of processing; retention excludes them with ``Exists(...filter(subject_key=...))``
    (served by the unique (tenant, subject_key) index)."""
    return SubjectState.objects.for_tenant(tenant).filter(restricted=True)


# --- Detail for the API and the admin ------------------------------------------------------


def list_consent_changes(*, tenant: Tenant, since: datetime) -> QuerySet[ConsentRecord]:
    """The tenant's consent decisions captured since ``since`` (shows a subject active)."""
    return ConsentRecord.objects.for_tenant(tenant).filter(captured_at__gte=since)


def list_consent_history(*, tenant: Tenant, subject_key: str) -> QuerySet[ConsentRecord]:
    """The subject's ledger, oldest first, with the purpose and notice joined."""
    return (ConsentRecord.objects.for_tenant(tenant).filter(subject_key=subject_key)
            .select_related("purpose", "notice").order_by("captured_at", "id"))


def get_subject_consent(
    *, tenant: Tenant, subject_key: str, history_limit: int = HISTORY_LIMIT
) -> SubjectConsentDetail:
    """Current state per purpose (every purpose of the tenant, defaults for never-chosen
    ones), level, flags and the newest ``history_limit`` ledger rows, oldest first."""
    purposes = _purposes(tenant)
    subject = _subject_states(tenant, [subject_key]).get(subject_key)
    states = _state_rows(tenant, [subject_key], [p.pk for p in purposes]).get(subject_key, {})
    view, details = _evaluate(purposes=purposes, subject=subject, states=states,
                              now=timezone.now(), expiry_months=get_expiry_months(tenant))
    newest = list(list_consent_history(tenant=tenant, subject_key=subject_key)
                  .order_by("-captured_at", "-id")[:history_limit + 1])
    truncated = len(newest) > history_limit
    history = list(reversed(newest[:history_limit]))
    gpc = any(d.purpose.is_sale_or_sharing and d.chosen is False and d.source == "gpc"
              for d in details)
    return SubjectConsentDetail(
        view=view,
        purposes=details,
        chosen_level=(subject.level or None) if subject else None,
        do_not_ask_until=subject.do_not_ask_until if subject and subject.objected else None,
        gpc=gpc,
        history=history,
        history_truncated=truncated,
    )


# --- Purposes and notices ------------------------------------------------------------------


def list_purposes(*, tenant: Tenant) -> QuerySet[Purpose]:
    return Purpose.objects.for_tenant(tenant).order_by("key")


def get_notice(*, tenant: Tenant, version: str) -> PrivacyNotice:
    """The tenant's notice with this version label, or ``unknown_notice_version``."""
    notice = PrivacyNotice.objects.for_tenant(tenant).filter(version=version).first()
    if notice is None:
        raise ApplicationError(
            f"Unknown privacy notice version '{version}'.", code="unknown_notice_version",
            details={"notice_version": version})
    return notice


def get_current_notices(*, tenant: Tenant, now: datetime | None = None
                        ) -> dict[int, PrivacyNotice]:
    """``{purpose_id: notice}``: the newest notice in effect covering each purpose."""
    now = now or timezone.now()
    through = PrivacyNotice.purposes.through
    rows = (through.objects
            .filter(privacynotice__tenant_id=tenant.pk, privacynotice__effective_at__lte=now)
            .select_related("privacynotice")
            .order_by("purpose_id", "-privacynotice__effective_at", "-privacynotice_id"))
    current: dict[int, PrivacyNotice] = {}
    for row in rows:
        current.setdefault(row.purpose_id, row.privacynotice)
    return current


def get_notice_purpose_ids(*, notice: PrivacyNotice) -> set[int]:
    return set(notice.purposes.values_list("pk", flat=True))


# --- Reporting -----------------------------------------------------------------------------


def count_decisions_by_month(records: QuerySet[ConsentRecord]) -> list[dict[str, Any]]:
    """Grants and withdrawals per purpose per month, for a (tenant-scoped) ledger queryset:
    ``[{"month": date, "purpose": key, "granted": n, "withdrawn": n}, ...]``, newest first."""
    rows = (records.filter(kind=ConsentRecord.Kind.PURPOSE)
            .annotate(month=TruncMonth("captured_at"))
            .values("month", "purpose__key", "granted")
            .annotate(n=Count("id"))
            .order_by())
    table: dict[tuple[Any, str], dict[str, Any]] = {}
    for row in rows:
        entry = table.setdefault(
            (row["month"], row["purpose__key"]),
            {"month": row["month"], "purpose": row["purpose__key"], "granted": 0,
             "withdrawn": 0})
        entry["granted" if row["granted"] else "withdrawn"] += row["n"]
    return sorted(table.values(), key=lambda e: (e["month"], e["purpose"]), reverse=True)


def get_consent_rate_by_day(*, tenant: Tenant, days: int = 14,
                            now: datetime | None = None) -> list[dict[str, Any]]:
    """The consent state per purpose at the end of each of the last ``days`` UTC days
    (today: now), in one query: ``[{"day": date, "purpose": key, "granted": n,
    "total": n}]``, oldest first, where ``total`` counts the subjects who had decided on the
    purpose by then and ``granted`` those whose latest decision by then was a grant still
    valid at that moment (not past the tenant's consent expiry, for a purpose whose legal
    basis is consent). ``granted / total`` is the day's consent rate for that purpose.

    A ledger row is the subject's state from its ``captured_at`` until their next decision
    on the purpose (``next_at``: ``LEAD`` over the subject's decisions on it, in a derived
    table: one sort of the tenant's ledger); it is the state at a moment ``t`` when
    ``captured_at < t <= next_at``. The outer query counts, per purpose, the rows that are
    the state at each day's end; rows replaced before the first day's end are nobody's state
    in the window and are left out."""
    from django.db.models import F, Window
    from django.db.models.functions import Lead

    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    day_list = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    ends = [min(now, datetime.combine(d + timedelta(days=1), time.min, tzinfo=UTC))
            for d in day_list]
    expiry_months = get_expiry_months(tenant)
    purpose_records = ConsentRecord.objects.for_tenant(tenant).filter(
        kind=ConsentRecord.Kind.PURPOSE)
    next_decision = Window(Lead("captured_at"), partition_by=[F("subject_key"), F("purpose")],
                           order_by=[F("captured_at").asc(), F("pk").asc()])
    rows = (purpose_records.filter(captured_at__lt=ends[-1])
            .annotate(next_at=next_decision)
            .order_by()
            .values("granted", "captured_at", "next_at", p_key=F("purpose__key"),
                    p_basis=F("purpose__legal_basis")))
    inner_sql, inner_params = rows.query.sql_with_params()

    def at(moment: datetime) -> Any:
        return connection.ops.adapt_datetimefield_value(moment)

    columns: list[str] = []
    params: list[Any] = []
    for end in ends:
        current = "s.captured_at < %s AND (s.next_at IS NULL OR s.next_at >= %s)"
        columns.append(f"SUM(CASE WHEN {current} THEN 1 ELSE 0 END)")
        params += [at(end), at(end)]
        valid = f"{current} AND s.granted"
        params += [at(end), at(end)]
        if expiry_months:
            valid += " AND (s.captured_at > %s OR s.p_basis <> %s)"
            params += [at(add_months(end, -expiry_months)), Purpose.LegalBasis.CONSENT]
        columns.append(f"SUM(CASE WHEN {valid} THEN 1 ELSE 0 END)")
    # Only placeholders and the ORM's own SQL are interpolated; every value is a parameter.
    sql = (f"SELECT s.p_key, {', '.join(columns)} FROM ({inner_sql}) s "  # noqa: S608
           "WHERE s.next_at IS NULL OR s.next_at >= %s GROUP BY s.p_key ORDER BY s.p_key")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *inner_params, at(ends[0])])
        by_purpose = cursor.fetchall()
    return [{"day": day, "purpose": r[0], "granted": int(r[2 + 2 * n]),
             "total": int(r[1 + 2 * n])}
            for n, day in enumerate(day_list) for r in by_purpose if r[1 + 2 * n]]
