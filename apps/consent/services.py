"""Writing consent (STYLE S3).

Every change goes through :class:`_SubjectWriter`: it locks the subject's
:class:`SubjectState` row (``select_for_update``), appends ledger rows, upserts the current
state and writes one audit entry, all in one transaction. Concurrent updates for one subject
therefore queue on that lock and land in the ledger in commit order; the current state is
always the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import status

from apps.audit import services as audit
from apps.consent.models import (
    METHOD_VALIDATOR,
    PERSONALIZATION,
    ConsentRecord,
    ConsentState,
    Level,
    PrivacyNotice,
    Purpose,
    Source,
    SubjectState,
)
from apps.consent.selectors import (
    _evaluate,
    _StateRow,
    get_current_notices,
    get_expiry_months,
    get_notice,
    get_objection_quiet_period,
)
from apps.core.exceptions import ApplicationError
from apps.tenants.models import Tenant

logger = logging.getLogger("consent")

GPC_METHOD = "sec-gpc"

#: ``fn(tenant_id, subject_keys, withdrawn_purpose_keys)``, called after commit whenever a
#: purpose stops being granted (other apps purge what depended on it).
WithdrawalListener = Callable[[int, list[str], frozenset[str]], None]
_withdrawal_listeners: list[WithdrawalListener] = []


def register_withdrawal_listener(listener: WithdrawalListener) -> None:
    """Register from ``AppConfig.ready``: e.g. events purges stored history when
    ``personalization`` is withdrawn. Listeners run on commit and must not raise."""
    if listener not in _withdrawal_listeners:
        _withdrawal_listeners.append(listener)


def _notify_withdrawals(tenant_id: int, withdrawn: Mapping[str, set[str]]) -> None:
    by_purposes: dict[frozenset[str], list[str]] = {}
    for subject_key, keys in withdrawn.items():
        if keys:
            by_purposes.setdefault(frozenset(keys), []).append(subject_key)
    if not by_purposes or not _withdrawal_listeners:
        return

    def run() -> None:
        for purposes, subjects in by_purposes.items():
            for listener in _withdrawal_listeners:
                try:
                    listener(tenant_id, subjects, purposes)
                except Exception:  # one failing listener must not hide the others
                    logger.exception("consent.withdrawal_listener_failed")

    transaction.on_commit(run)


#: ``fn(tenant_id, subject_keys)``, called after commit for the subjects whose effective
#: level left "full" in that transaction (a level of "session" or "off", an objection, a
#: restriction, personalization withdrawn), or stays below it as their restriction is
#: lifted: the modeling app forgets them at once.
PersonalizationStopListener = Callable[[int, list[str]], None]
_personalization_stop_listeners: list[PersonalizationStopListener] = []


def register_personalization_stop_listener(listener: PersonalizationStopListener) -> None:
    """Register from ``AppConfig.ready``. Listeners run on commit, so before the service
    that changed the level returns to its API call or portal form, and must not raise."""
    if listener not in _personalization_stop_listeners:
        _personalization_stop_listeners.append(listener)


def _notify_personalization_stopped(tenant_id: int, subject_keys: list[str]) -> None:
    if not subject_keys or not _personalization_stop_listeners:
        return

    def run() -> None:
        for listener in _personalization_stop_listeners:
            try:
                listener(tenant_id, list(subject_keys))
            except Exception:  # one failing listener must not hide the others
                logger.exception("consent.personalization_stop_listener_failed")

    transaction.on_commit(run)


# --- Validation (before anything is written) ----------------------------------------------


def _validate_source(source: str) -> str:
    if source not in Source.values:
        raise ApplicationError(f"Unknown source '{source}'.", code="invalid_source",
                               details={"allowed": list(Source.values)})
    return source


def _validate_method(method: str) -> str:
    method = method or ""
    try:
        METHOD_VALIDATOR(method)
    except Exception as exc:
        raise ApplicationError(
            "'source' is a short label such as 'banner' (letters, digits, '_', '.', ':', '-'; "
            "at most 64).", code="invalid_source") from exc
    return method


def _validate_level(level: str | None) -> str | None:
    if level is not None and level not in Level.values:
        raise ApplicationError(f"Unknown level '{level}'.", code="invalid_level",
                               details={"allowed": list(Level.values)})
    return level


def _resolve_purposes(tenant: Tenant, decisions: Mapping[str, bool]) -> dict[str, Purpose]:
    if not isinstance(decisions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in decisions.items()):
        raise ApplicationError("Decisions map purpose keys to true or false.",
                               code="malformed_body")
    purposes = {p.key: p for p in Purpose.objects.for_tenant(tenant)
                .select_related("renewal_required_from")}
    unknown = sorted(set(decisions) - set(purposes))
    if unknown:
        raise ApplicationError(
            f"Unknown purpose(s): {', '.join(unknown)}.", code="unknown_purpose",
            details={"unknown": unknown, "known": sorted(purposes)})
    return purposes


def _resolve_notices(
    tenant: Tenant, purposes: Mapping[str, Purpose], decisions: Mapping[str, bool],
    notice_version: str | None, now: datetime,
) -> dict[str, PrivacyNotice | None]:
    """The notice each decision is recorded against. A grant needs one that covers it
    (GDPR Art. 7(1): the controller must show what the subject agreed to)."""
    if notice_version is not None:
        notice = get_notice(tenant=tenant, version=notice_version)
        if notice.effective_at > now:
            raise ApplicationError(
                f"Notice '{notice_version}' is not in effect yet.", code="notice_not_effective",
                details={"notice_version": notice_version})
        covered = set(notice.purposes.values_list("key", flat=True))
        uncovered = sorted(k for k, granted in decisions.items() if granted and k not in covered)
        if uncovered:
            raise ApplicationError(
                f"Notice '{notice_version}' does not describe: {', '.join(uncovered)}.",
                code="notice_does_not_cover_purpose",
                details={"notice_version": notice_version, "purposes": uncovered})
        return dict.fromkeys(decisions, notice)
    current = get_current_notices(tenant=tenant, now=now)
    resolved = {key: current.get(purposes[key].pk) for key in decisions}
    missing = sorted(k for k, granted in decisions.items() if granted and resolved[k] is None)
    if missing:
        raise ApplicationError(
            f"No privacy notice in effect describes: {', '.join(missing)}.",
            code="no_notice_for_purpose", details={"purposes": missing})
    return resolved


# --- The writer ----------------------------------------------------------------------------


def _lock_subjects(tenant: Tenant, subject_keys: Iterable[str]) -> dict[str, SubjectState]:
    """Create missing subject rows, then lock them all, in key order (no deadlocks between
    two batches). Must run inside a transaction."""
    keys = sorted(set(subject_keys))
    SubjectState.objects.bulk_create(
        [SubjectState(tenant=tenant, subject_key=k) for k in keys], ignore_conflicts=True)
    locked = (SubjectState.objects.for_tenant(tenant).select_for_update()
              .filter(subject_key__in=keys).order_by("subject_key"))
    return {s.subject_key: s for s in locked}


def _load_states(tenant: Tenant, subject_keys: Collection[str]
                 ) -> dict[str, dict[int, ConsentState]]:
    found: dict[str, dict[int, ConsentState]] = {}
    qs = (ConsentState.objects.for_tenant(tenant).filter(subject_key__in=list(subject_keys))
          .select_related("notice"))
    for state in qs:
        found.setdefault(state.subject_key, {})[state.purpose_id] = state
    return found


@dataclass
class _SubjectWriter:
    """One subject's pending changes, applied under its lock."""

    tenant: Tenant
    subject: SubjectState
    states: dict[int, ConsentState]
    now: datetime
    method: str = ""
    records: list[ConsentRecord] = field(default_factory=list)
    changed_states: dict[int, ConsentState] = field(default_factory=dict)
    subject_dirty: bool = False
    withdrawn: set[str] = field(default_factory=set)
    #: Whether the subject's effective level was "full" before this call's changes.
    was_full: bool = False

    @property
    def subject_key(self) -> str:
        return self.subject.subject_key

    @property
    def lifted_restriction(self) -> bool:
        """A restriction ended in this call: rows it kept frozen below "full" are due."""
        return any(r.kind == ConsentRecord.Kind.RESTRICTION and not r.granted
                   for r in self.records)

    def _record(self, **fields: Any) -> ConsentRecord:
        fields.setdefault("method", self.method)
        record = ConsentRecord(tenant=self.tenant, subject_key=self.subject_key,
                               captured_at=self.now, **fields)
        self.records.append(record)
        return record

    def set_purpose(self, purpose: Purpose, granted: bool, notice: PrivacyNotice | None,
                    source: str, method: str | None = None) -> None:
        method = self.method if method is None else method
        previous = self.states.get(purpose.pk)
        was_granted = previous.granted if previous is not None else purpose.default_granted
        if was_granted and not granted:
            self.withdrawn.add(purpose.key)
        self._record(kind=ConsentRecord.Kind.PURPOSE, purpose=purpose, granted=granted,
                     notice=notice, source=source, method=method)
        state = ConsentState(tenant=self.tenant, subject_key=self.subject_key, purpose=purpose,
                             granted=granted, notice=notice, source=source, method=method,
                             captured_at=self.now, updated_at=self.now)
        self.states[purpose.pk] = state
        self.changed_states[purpose.pk] = state

    def _change_subject(self, name: str, value: Any, **record: Any) -> bool:
        """Set one field of the subject's state and append the ledger entry ``record``;
        False, with nothing recorded, when the field already holds ``value``."""
        if getattr(self.subject, name) == value:
            return False
        setattr(self.subject, name, value)
        self.subject_dirty = True
        self._record(**record)
        return True

    def set_level(self, level: str, source: str) -> None:
        self._change_subject("level", level, kind=ConsentRecord.Kind.LEVEL, level=level,
                             source=source)

    def set_restricted(self, restricted: bool, source: str) -> None:
        self._change_subject("restricted", restricted, kind=ConsentRecord.Kind.RESTRICTION,
                             granted=restricted, source=source)

    def set_objected(self, objected: bool, source: str) -> None:
        if not self._change_subject("objected", objected, kind=ConsentRecord.Kind.OBJECTION,
                                    granted=objected, source=source):
            return
        if objected:
            self.subject.objected_at = self.now
            self.subject.do_not_ask_until = self.now + get_objection_quiet_period(self.tenant)
        else:
            self.subject.do_not_ask_until = None

    def state_rows(self) -> dict[int, _StateRow]:
        return {
            pid: _StateRow(pid, s.granted, s.notice.version if s.notice else None,
                           s.notice.effective_at if s.notice else None, s.source, s.method,
                           s.captured_at)
            for pid, s in self.states.items()
        }

    def audit_details(self) -> dict[str, Any]:
        changes = []
        for r in self.records:
            entry: dict[str, Any] = {"kind": r.kind, "source": r.source}
            if r.kind == ConsentRecord.Kind.PURPOSE:
                entry["purpose"] = r.purpose.key if r.purpose else None
            if r.kind == ConsentRecord.Kind.LEVEL:
                entry["level"] = r.level
            else:
                entry["granted"] = r.granted
            if r.notice is not None:
                entry["notice_version"] = r.notice.version
            if r.method:
                entry["method"] = r.method
            changes.append(entry)
        return {"changes": changes}


def _flush(writers: list[_SubjectWriter], *, action: str, actor: Any,
           personalization: Purpose | None = None) -> list[ConsentRecord]:
    """Write every writer's ledger rows, states and flags, and one audit entry each.
    With ``personalization`` (the purpose), subjects whose effective level this call took
    below "full" are announced to the personalization-stop listeners."""
    records = [r for w in writers for r in w.records]
    if not records:
        return []
    tenant = writers[0].tenant
    # Inputs were validated before the lock; the DB constraints guard the rest (a full_clean
    # per row would cost a query per constraint and row).
    ConsentRecord.objects.bulk_create(records)
    states = [s for w in writers for s in w.changed_states.values()]
    if states:
        ConsentState.objects.bulk_create(
            states, update_conflicts=True,
            unique_fields=["tenant", "subject_key", "purpose"],
            update_fields=["granted", "notice", "source", "method", "captured_at",
                           "updated_at"],
        )
    dirty = [w.subject for w in writers if w.subject_dirty]
    for subject in dirty:
        subject.updated_at = writers[0].now
    if dirty:
        SubjectState.objects.for_tenant(tenant).bulk_update(
            dirty, ["level", "restricted", "objected", "objected_at", "do_not_ask_until",
                    "updated_at"])
    for writer in writers:
        if writer.records:
            audit.record(tenant, action, actor, writer.records[-1], writer.audit_details(),
                         subject_key=writer.subject_key)
    _notify_withdrawals(tenant.pk, {w.subject_key: w.withdrawn for w in writers})
    if personalization is not None:
        _notify_personalization_stopped(tenant.pk, [
            w.subject_key for w in writers
            if (w.was_full or w.lifted_restriction)
            and not _personalizes_fully(w, personalization)])
    logger.info("consent.recorded", extra={"tenant_id": tenant.pk, "records": len(records),
                                             "subjects": len(writers)})
    return records


def _gpc_opt_out(writer: _SubjectWriter, sale_purposes: Iterable[Purpose],
                 notices: Mapping[int, PrivacyNotice]) -> None:
    """Opt the subject out of every sale/sharing purpose not already opted out by GPC.
    Writing nothing when nothing changes is what makes a repeated header cheap."""
    for purpose in sale_purposes:
        state = writer.states.get(purpose.pk)
        if state is not None and not state.granted and state.source == Source.GPC:
            continue
        writer.set_purpose(purpose, False, notices.get(purpose.pk), Source.GPC.value,
                           method=GPC_METHOD)


# --- Public services -----------------------------------------------------------------------


@transaction.atomic
def record_consents(
    *,
    tenant: Tenant,
    subject_key: str,
    decisions: Mapping[str, bool],
    notice_version: str | None = None,
    level: str | None = None,
    source: str = Source.API.value,
    actor: Any = None,
    method: str = "",
    gpc: bool = False,
    gpc_override: bool = False,
    restricted: bool | None = None,
    objected: bool | None = None,
) -> list[ConsentRecord]:
    """Record one subject's decisions (the PUT's service) and return the ledger rows written.

    Every explicit decision is a ledger row (it is the proof, and a re-grant restarts the
    expiry clock); level and flags are recorded only when they change. Validation happens
    before any write and the whole call is one transaction: on any error nothing is written.

    * ``gpc``: the request carried ``Sec-GPC: 1``: every sale/sharing purpose is opted out
      (source ``gpc``, once per change) and grants of them in ``decisions`` are ignored.
    * A grant of a purpose opted out by GPC, in a request without the header, is refused
      (``gpc_opt_out_in_effect``) unless ``gpc_override`` says the subject explicitly chose it.
    * ``objected=True`` (Art. 21) withdraws personalization; granting it again before the
      tenant's quiet period ends is refused (``objection_in_effect``) unless it comes from the
      subject's own portal or lifts the objection in the same call.
    * ``level="full"`` needs personalization usable after this call (``level_requires_consent``);
      withdrawing personalization drops a stored "full" to "session".
    """
    _validate_source(source)
    method = _validate_method(method)
    _validate_level(level)
    purposes = _resolve_purposes(tenant, decisions)
    now = timezone.now()
    notices = _resolve_notices(tenant, purposes, decisions, notice_version, now)
    if objected and decisions.get(PERSONALIZATION) is True:
        raise ApplicationError("An objection cannot grant personalization in the same call.",
                               code="conflicting_decisions")

    subject = _lock_subjects(tenant, [subject_key])[subject_key]
    # Taken after the lock: the ledger order and timestamps follow the commit order.
    now = timezone.now()
    writer = _SubjectWriter(tenant=tenant, subject=subject,
                            states=_load_states(tenant, [subject_key]).get(subject_key, {}),
                            now=now, method=method)
    personalization = purposes.get(PERSONALIZATION)
    writer.was_full = _personalizes_fully(writer, personalization)
    sale = [p for p in purposes.values() if p.is_sale_or_sharing]
    pending = dict(decisions)
    if gpc:
        for purpose in sale:
            pending.pop(purpose.key, None)  # GPC wins over a banner's toggle (CCPA 7025(c))
    elif not gpc_override:
        blocked = sorted(
            key for key, granted in pending.items()
            if granted and purposes[key].is_sale_or_sharing
            and (state := writer.states.get(purposes[key].pk)) is not None
            and not state.granted and state.source == Source.GPC)
        if blocked:
            raise ApplicationError(
                "The subject opted out through Global Privacy Control; a request without the "
                "header does not re-enable it.", code="gpc_opt_out_in_effect",
                status_code=status.HTTP_409_CONFLICT, details={"purposes": blocked})

    if subject.objected and pending.get(PERSONALIZATION) is True and objected is not False:
        if (subject.do_not_ask_until and now < subject.do_not_ask_until
                and source != Source.PORTAL):
            raise ApplicationError(
                "The subject objected to personalization and may not be asked again yet.",
                code="objection_in_effect", status_code=status.HTTP_409_CONFLICT,
                details={"do_not_ask_until": subject.do_not_ask_until.isoformat()})
        objected = False  # a fresh grant after the quiet period ends the objection

    if restricted is not None:
        writer.set_restricted(restricted, source)
    if objected is not None:
        writer.set_objected(objected, source)
    if objected and PERSONALIZATION not in pending:
        personalization = purposes.get(PERSONALIZATION)
        state = writer.states.get(personalization.pk) if personalization else None
        if personalization and state is not None and state.granted:
            writer.set_purpose(personalization, False,
                               get_current_notices(tenant=tenant, now=now).get(
                                   personalization.pk, state.notice), source)
    for key, granted in pending.items():
        writer.set_purpose(purposes[key], granted, notices[key], source)
    if gpc:
        _gpc_opt_out(writer, sale, get_current_notices(tenant=tenant, now=now))

    _apply_level(writer, purposes, level, source)
    return _flush([writer], action="consent.recorded", actor=actor,
                  personalization=personalization)


def _apply_level(writer: _SubjectWriter, purposes: Mapping[str, Purpose], level: str | None,
                 source: str) -> None:
    """"full" needs personalization granted (and not objected to) once this call's decisions
    are applied; a stored "full" without it drops to "session" (the issue's rule)."""
    granted = _personalization_granted(writer, purposes.get(PERSONALIZATION))
    if level == Level.FULL and not granted:
        raise ApplicationError(
            "Level 'full' needs the 'personalization' purpose granted.",
            code="level_requires_consent", details={"level": level})
    if level is not None:
        writer.set_level(level, source)
    elif writer.subject.level == Level.FULL and not granted:
        writer.set_level(Level.SESSION.value, source)


def _personalizes_fully(writer: _SubjectWriter, personalization: Purpose | None) -> bool:
    """Whether the writer's subject is at effective level "full" (``effective_level``):
    not restricted, no lower level chosen, personalization usable."""
    return (not writer.subject.restricted
            and writer.subject.level in ("", Level.FULL)
            and _personalization_granted(writer, personalization))


def _personalization_granted(writer: _SubjectWriter, personalization: Purpose | None) -> bool:
    if personalization is None or writer.subject.objected:
        return False
    _, details = _evaluate(purposes=[personalization], subject=None,
                           states=writer.state_rows(), now=writer.now,
                           expiry_months=get_expiry_months(writer.tenant))
    return details[0].granted


def apply_gpc_opt_out(*, tenant: Tenant, subject_keys: Collection[str], actor: Any = None
                      ) -> int:
    """Record a Global Privacy Control signal for many subjects (the events endpoint calls
    this for requests with ``Sec-GPC: 1``). Idempotent: ledger rows are written only for
    subjects whose sale/sharing purposes are not already opted out by GPC, so a browser that
    sends the header on every request costs two reads and no writes. Returns rows written."""
    keys = sorted(set(subject_keys))
    sale = list(Purpose.objects.for_tenant(tenant).filter(is_sale_or_sharing=True)
                .order_by("key"))
    if not keys or not sale:
        return 0
    sale_ids = [p.pk for p in sale]
    done = set(ConsentState.objects.for_tenant(tenant)
               .filter(subject_key__in=keys, purpose_id__in=sale_ids, granted=False,
                       source=Source.GPC).values_list("subject_key", "purpose_id"))
    pending = [k for k in keys if any((k, pid) not in done for pid in sale_ids)]
    if not pending:
        return 0
    with transaction.atomic():
        subjects = _lock_subjects(tenant, pending)
        states = _load_states(tenant, pending)  # re-read under the lock
        now = timezone.now()
        notices = get_current_notices(tenant=tenant, now=now)
        writers = []
        for key in pending:
            writer = _SubjectWriter(tenant=tenant, subject=subjects[key],
                                    states=states.get(key, {}), now=now, method=GPC_METHOD)
            _gpc_opt_out(writer, sale, notices)
            writers.append(writer)
        return len(_flush(writers, action="consent.gpc_opt_out", actor=actor))


def set_restriction(*, tenant: Tenant, subject_key: str, restricted: bool,
                    source: str = Source.API.value, actor: Any = None) -> list[ConsentRecord]:
    """GDPR Art. 18: keep the subject's data but use it for nothing (privacy app)."""
    return record_consents(tenant=tenant, subject_key=subject_key, decisions={},
                           source=source, actor=actor, restricted=restricted)


def record_objection(*, tenant: Tenant, subject_key: str, source: str = Source.API.value,
                     actor: Any = None) -> list[ConsentRecord]:
    """GDPR Art. 21: withdraw personalization and stop legitimate-interest processing; the
    subject may not be asked again for the tenant's quiet period."""
    return record_consents(tenant=tenant, subject_key=subject_key, decisions={},
                           source=source, actor=actor, objected=True)


def lift_objection(*, tenant: Tenant, subject_key: str, source: str = Source.API.value,
                   actor: Any = None) -> list[ConsentRecord]:
    return record_consents(tenant=tenant, subject_key=subject_key, decisions={},
                           source=source, actor=actor, objected=False)


# --- Purposes and notices ------------------------------------------------------------------

DEFAULT_NOTICE_VERSION = "v1"
DEFAULT_PURPOSES: tuple[dict[str, Any], ...] = (
    {
        "key": PERSONALIZATION,
        "name": "Personalized recommendations",
        "description": "We use the items you view and buy on this site to recommend others "
                       "you may like. You can switch this off at any time.",
        "legal_basis": Purpose.LegalBasis.CONSENT,
    },
    {
        "key": "analytics",
        "name": "Aggregate analytics",
        "description": "We count how items are used, only in aggregate, to improve the site. "
                       "You can object at any time.",
        "legal_basis": Purpose.LegalBasis.LEGITIMATE_INTEREST,
        "aggregate_only": True,
        "default_granted": True,
    },
    {
        "key": "cross_context_ads",
        "name": "Cross-context advertising",
        "description": "We share data about your activity with advertising partners to show "
                       "you ads on other sites. Under CCPA this is 'sale or sharing'.",
        "legal_basis": Purpose.LegalBasis.CONSENT,
        "is_sale_or_sharing": True,
    },
)
DEFAULT_NOTICE_TEXT = (
    "This site uses Discreet to personalize what you see. With your consent we use your "
    "activity on this site to recommend items (personalization) and, separately, to show you "
    "ads on other sites (cross-context advertising). We count usage in aggregate to improve "
    "the site (analytics). You can change your choices at any time."
)


def provision_consent_defaults(tenant: Tenant) -> None:
    """Tenant provisioner: the default purposes and a first notice covering them.
    Idempotent: existing purposes are left as the tenant edited them."""
    existing = set(Purpose.objects.for_tenant(tenant).values_list("key", flat=True))
    created = [Purpose(tenant=tenant, **spec) for spec in DEFAULT_PURPOSES
               if spec["key"] not in existing]
    for purpose in created:
        purpose.full_clean(exclude=["tenant"])
        purpose.save()
    if not PrivacyNotice.objects.for_tenant(tenant).exists():
        notice = PrivacyNotice.objects.create(
            tenant=tenant, version=DEFAULT_NOTICE_VERSION, text=DEFAULT_NOTICE_TEXT,
            effective_at=timezone.now())
        notice.purposes.set(Purpose.objects.for_tenant(tenant))


@transaction.atomic
def create_purpose(*, tenant: Tenant, key: str, name: str, description: str,
                   legal_basis: str = Purpose.LegalBasis.CONSENT, is_sale_or_sharing: bool = False,
                   uses_sensitive_data: bool = False, aggregate_only: bool = False,
                   default_granted: bool = False) -> Purpose:
    if Purpose.objects.for_tenant(tenant).filter(key=key).exists():
        raise ApplicationError(f"Purpose '{key}' already exists.", code="purpose_exists")
    purpose = Purpose(tenant=tenant, key=key, name=name, description=description,
                      legal_basis=legal_basis, is_sale_or_sharing=is_sale_or_sharing,
                      uses_sensitive_data=uses_sensitive_data, aggregate_only=aggregate_only,
                      default_granted=default_granted)
    try:
        purpose.full_clean(exclude=["tenant"])
    except Exception as exc:
        raise ApplicationError("The purpose is not valid.", code="invalid_purpose",
                               details=getattr(exc, "message_dict", {})) from exc
    purpose.save()
    return purpose


@transaction.atomic
def publish_notice(*, tenant: Tenant, version: str, text: str, purpose_keys: Iterable[str],
                   effective_at: datetime | None = None, require_renewal: bool = False,
                   actor: Any = None) -> PrivacyNotice:
    """A new notice version covering ``purpose_keys``. With ``require_renewal`` (a material
    change) earlier consents to those purposes read as not given until renewed."""
    keys = set(purpose_keys)
    purposes = list(Purpose.objects.for_tenant(tenant).filter(key__in=keys))
    unknown = sorted(keys - {p.key for p in purposes})
    if unknown or not purposes:
        raise ApplicationError("A notice covers known purposes.", code="unknown_purpose",
                               details={"unknown": unknown})
    if PrivacyNotice.objects.for_tenant(tenant).filter(version=version).exists():
        raise ApplicationError(f"Notice '{version}' already exists.", code="notice_exists")
    notice = PrivacyNotice(tenant=tenant, version=version, text=text,
                           effective_at=effective_at or timezone.now())
    notice.full_clean(exclude=["tenant"])
    notice.save()
    notice.purposes.set(purposes)
    if require_renewal:
        require_consent_renewal(tenant=tenant, notice=notice, actor=actor)
    return notice


@transaction.atomic
def require_consent_renewal(*, tenant: Tenant, notice: PrivacyNotice,
                            purpose_keys: Iterable[str] | None = None, actor: Any = None
                            ) -> list[Purpose]:
    """Mark consents given against notices older than ``notice`` as needing renewal, for the
    purposes it covers (or a subset). Nothing is rewritten: the purpose remembers the notice
    from which consents count, so the ledger stays untouched and the change is one row."""
    if notice.tenant_id != tenant.pk:
        raise ApplicationError("Unknown privacy notice.", code="unknown_notice_version")
    if notice.effective_at > timezone.now():
        raise ApplicationError("Renewal can be required once the notice is in effect.",
                               code="notice_not_effective")
    purposes = Purpose.objects.for_tenant(tenant).filter(notices=notice)
    if purpose_keys is not None:
        purposes = purposes.filter(key__in=list(purpose_keys))
    changed = []
    for purpose in purposes.select_for_update():
        purpose.renewal_required_from = notice
        purpose.save(update_fields=["renewal_required_from", "updated_at"])  # auditlog sees it
        changed.append(purpose)
    audit.record(tenant, "consent.renewal_required", actor, notice,
                 {"notice_version": notice.version, "purposes": [p.key for p in changed]})
    return changed
