"""record_consents, apply_gpc_opt_out, flags, notices and the tenant defaults."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.consent import services
from apps.consent.models import (
    ConsentRecord,
    ConsentState,
    PrivacyNotice,
    Purpose,
    SubjectState,
)
from apps.consent.selectors import can_use, get_subject_consent, get_subject_consent_views
from apps.consent.services import (
    apply_gpc_opt_out,
    lift_objection,
    provision_consent_defaults,
    publish_notice,
    record_consents,
    record_objection,
    register_withdrawal_listener,
    require_consent_renewal,
    set_restriction,
)
from apps.core.exceptions import ApplicationError
from tests.factories.consent import PrivacyNoticeFactory, PurposeFactory, record_for, subject_key

SK = subject_key("bob")


def _counts(tenant) -> tuple[int, int, int, int]:
    return (ConsentRecord.objects.for_tenant(tenant).count(),
            ConsentState.objects.for_tenant(tenant).count(),
            SubjectState.objects.for_tenant(tenant).count(),
            AuditEvent.objects.for_tenant(tenant).count())


# --- Ledger and state -----------------------------------------------------------------------


def test_a_decision_appends_to_the_ledger_and_updates_the_state(tenant):
    rows = record_consents(tenant=tenant, subject_key=SK,
                           decisions={"personalization": True, "cross_context_ads": False},
                           method="banner")
    assert [(r.purpose.key, r.granted, r.notice.version, r.source, r.method) for r in rows] == [
        ("personalization", True, "v1", "api", "banner"),
        ("cross_context_ads", False, "v1", "api", "banner")]
    state = ConsentState.objects.for_tenant(tenant).get(subject_key=SK,
                                                       purpose__key="personalization")
    assert (state.granted, state.notice.version, state.source, state.method) == (
        True, "v1", "api", "banner")
    record_for(tenant, SK, personalization=False)
    assert ConsentRecord.objects.for_tenant(tenant).filter(subject_key=SK).count() == 3
    state.refresh_from_db()
    assert state.granted is False


def test_every_change_is_audited_in_the_same_transaction_without_the_subject_key(tenant):
    record_consents(tenant=tenant, subject_key=SK, decisions={"personalization": True},
                    method="banner")
    entry = AuditEvent.objects.for_tenant(tenant).get(action="consent.recorded")
    assert entry.subject_token  # linked to the subject through the erasable token only
    assert SK not in str(entry.details)
    assert entry.details["changes"][0] == {"kind": "purpose", "source": "api",
                                           "purpose": "personalization", "granted": True,
                                           "notice_version": "v1", "method": "banner"}


def test_a_failing_audit_write_leaves_no_ledger_row_and_no_state(tenant, mocker):
    mocker.patch("apps.consent.services.audit.record", side_effect=RuntimeError("disk full"))
    before = _counts(tenant)
    with pytest.raises(RuntimeError):
        record_for(tenant, SK, personalization=True)
    assert _counts(tenant) == before


def test_ledger_rows_are_never_updated(tenant):
    row = record_for(tenant, SK, personalization=True)[0]
    row.granted = False
    with pytest.raises(TypeError, match="append-only"):
        row.save()
    with pytest.raises(TypeError, match="append-only"):
        ConsentRecord.objects.for_tenant(tenant).update(granted=False)
    assert ConsentRecord.objects.for_tenant(tenant).get().granted is True


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"decisions": {"nope": True}}, "unknown_purpose"),
    ({"decisions": {"personalization": True}, "notice_version": "v99"},
     "unknown_notice_version"),
    ({"decisions": {"personalization": True}, "level": "max"}, "invalid_level"),
    ({"decisions": {"personalization": "yes"}}, "malformed_body"),
    ({"decisions": {"personalization": True}, "source": "banner"}, "invalid_source"),
    ({"decisions": {"personalization": True}, "method": "alice@example.com"},
     "invalid_source"),
    ({"decisions": {"personalization": False}, "level": "full"}, "level_requires_consent"),
    ({"decisions": {"personalization": True}, "objected": True}, "conflicting_decisions"),
])
def test_invalid_input_is_refused_with_a_code_and_nothing_is_written(tenant, kwargs, code):
    record_for(tenant, subject_key("other"), analytics=True)
    before = _counts(tenant)
    with pytest.raises(ApplicationError) as error:
        record_consents(tenant=tenant, subject_key=SK, **kwargs)
    assert error.value.code == code
    assert _counts(tenant) == before


def test_a_grant_is_recorded_against_the_notice_the_subject_saw(tenant):
    publish_notice(tenant=tenant, version="v2", text="Second text.",
                   purpose_keys=["personalization"])
    rows = record_consents(tenant=tenant, subject_key=SK, decisions={"personalization": True},
                           notice_version="v1")
    assert rows[0].notice.version == "v1"
    rows = record_for(tenant, SK, personalization=True)  # omitted: the purpose's current one
    assert rows[0].notice.version == "v2"


def test_a_grant_needs_a_notice_in_effect_that_describes_the_purpose(tenant):
    PurposeFactory(tenant=tenant, key="newsletter")
    with pytest.raises(ApplicationError) as error:
        record_for(tenant, SK, newsletter=True)
    assert error.value.code == "no_notice_for_purpose"
    PrivacyNoticeFactory(tenant=tenant, version="future",
                         effective_at=timezone.now() + timedelta(days=3))
    with pytest.raises(ApplicationError) as error:
        record_consents(tenant=tenant, subject_key=SK, decisions={"newsletter": True},
                        notice_version="future")
    assert error.value.code == "notice_not_effective"
    with pytest.raises(ApplicationError) as error:
        record_consents(tenant=tenant, subject_key=SK, decisions={"newsletter": True},
                        notice_version="v1")
    assert error.value.code == "notice_does_not_cover_purpose"
    record_for(tenant, SK, newsletter=False)  # a withdrawal never needs a notice


# --- Level ---------------------------------------------------------------------------------


def test_withdrawing_personalization_drops_a_full_level_to_session(tenant):
    record_for(tenant, SK, level="full", personalization=True)
    rows = record_for(tenant, SK, personalization=False)
    assert [(r.kind, r.level) for r in rows] == [("purpose", ""), ("level", "session")]
    assert SubjectState.objects.for_tenant(tenant).get(subject_key=SK).level == "session"


def test_a_level_change_is_recorded_once(tenant):
    record_for(tenant, SK, level="off")
    assert record_consents(tenant=tenant, subject_key=SK, decisions={}, level="off") == []
    assert ConsentRecord.objects.for_tenant(tenant).filter(kind="level").count() == 1


# --- GPC -----------------------------------------------------------------------------------


def test_gpc_opts_out_of_every_sale_purpose_once_per_change(tenant):
    PurposeFactory(tenant=tenant, key="data_broker", is_sale_or_sharing=True)
    record_for(tenant, SK, personalization=True, cross_context_ads=True)
    keys = [SK, subject_key("never-seen")]
    assert apply_gpc_opt_out(tenant=tenant, subject_keys=keys) == 4
    assert apply_gpc_opt_out(tenant=tenant, subject_keys=keys) == 0
    gpc_rows = ConsentRecord.objects.for_tenant(tenant).filter(source="gpc")
    assert sorted(gpc_rows.values_list("purpose__key", flat=True)) == [
        "cross_context_ads", "cross_context_ads", "data_broker", "data_broker"]
    assert not gpc_rows.filter(granted=True).exists()
    assert can_use(tenant=tenant, subject_key=SK, purpose="personalization")  # untouched
    assert AuditEvent.objects.for_tenant(tenant).filter(action="consent.gpc_opt_out").count() == 2


def test_a_repeated_gpc_signal_costs_no_write(tenant, django_assert_max_num_queries):
    apply_gpc_opt_out(tenant=tenant, subject_keys=[SK])
    with django_assert_max_num_queries(2):
        assert apply_gpc_opt_out(tenant=tenant, subject_keys=[SK]) == 0


def test_gpc_opt_out_is_not_re_enabled_by_a_later_grant_without_the_header(tenant):
    apply_gpc_opt_out(tenant=tenant, subject_keys=[SK])
    before = _counts(tenant)
    with pytest.raises(ApplicationError) as error:
        record_for(tenant, SK, personalization=True, cross_context_ads=True)
    assert (error.value.code, error.value.status_code) == ("gpc_opt_out_in_effect", 409)
    assert _counts(tenant) == before
    assert not can_use(tenant=tenant, subject_key=SK, purpose="cross_context_ads")


def test_an_explicit_override_re_enables_a_gpc_opt_out(tenant):
    apply_gpc_opt_out(tenant=tenant, subject_keys=[SK])
    record_consents(tenant=tenant, subject_key=SK, decisions={"cross_context_ads": True},
                    gpc_override=True, method="explicit-opt-in")
    assert can_use(tenant=tenant, subject_key=SK, purpose="cross_context_ads")
    assert apply_gpc_opt_out(tenant=tenant, subject_keys=[SK]) == 1  # the signal wins again


def test_with_the_gpc_signal_a_grant_of_a_sale_purpose_is_overridden(tenant):
    rows = record_consents(tenant=tenant, subject_key=SK, gpc=True,
                           decisions={"personalization": True, "cross_context_ads": True})
    assert sorted((r.purpose.key, r.granted, r.source) for r in rows) == [
        ("cross_context_ads", False, "gpc"), ("personalization", True, "api")]
    rows = record_consents(tenant=tenant, subject_key=SK, gpc=True,
                           decisions={"personalization": True})
    assert [r.source for r in rows] == ["api"]  # the opt-out is not written twice


def test_gpc_without_sale_purposes_writes_nothing(tenant):
    Purpose.objects.for_tenant(tenant).update(is_sale_or_sharing=False)
    assert apply_gpc_opt_out(tenant=tenant, subject_keys=[SK]) == 0
    assert apply_gpc_opt_out(tenant=tenant, subject_keys=[]) == 0


def test_gpc_for_one_tenant_leaves_the_other_alone(tenant, other_tenant):
    record_for(other_tenant, SK, cross_context_ads=True)
    apply_gpc_opt_out(tenant=tenant, subject_keys=[SK])
    assert can_use(tenant=other_tenant, subject_key=SK, purpose="cross_context_ads")


# --- Restriction and objection ---------------------------------------------------------------


def test_restriction_is_a_recorded_flag_set_once(tenant):
    assert len(set_restriction(tenant=tenant, subject_key=SK, restricted=True)) == 1
    assert set_restriction(tenant=tenant, subject_key=SK, restricted=True) == []
    set_restriction(tenant=tenant, subject_key=SK, restricted=False)
    assert list(ConsentRecord.objects.for_tenant(tenant).values_list("kind", "granted")) == [
        ("restriction", True), ("restriction", False)]


def test_an_objection_withdraws_personalization_and_blocks_re_asking(tenant):
    record_for(tenant, SK, level="full", personalization=True)
    rows = record_objection(tenant=tenant, subject_key=SK)
    assert [(r.kind, r.granted, r.level) for r in rows] == [
        ("objection", True, ""), ("purpose", False, ""), ("level", None, "session")]
    before = _counts(tenant)
    with pytest.raises(ApplicationError) as error:
        record_for(tenant, SK, personalization=True)
    assert (error.value.code, error.value.status_code) == ("objection_in_effect", 409)
    assert _counts(tenant) == before


def test_the_subject_may_lift_an_objection_from_the_portal_at_any_time(tenant):
    record_objection(tenant=tenant, subject_key=SK)
    record_consents(tenant=tenant, subject_key=SK, decisions={"personalization": True},
                    source="portal")
    view = get_subject_consent_views(tenant=tenant, subject_keys=[SK])[SK]
    assert not view.objected
    assert "personalization" in view.allowed_purposes


def test_after_the_quiet_period_a_new_grant_ends_the_objection(tenant):
    tenant.settings = {"objection_quiet_days": 30}
    tenant.save()
    record_objection(tenant=tenant, subject_key=SK)
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        record_for(tenant, SK, personalization=True)
        assert can_use(tenant=tenant, subject_key=SK, purpose="personalization")
        assert not SubjectState.objects.for_tenant(tenant).get(subject_key=SK).objected


def test_an_objection_can_be_lifted_explicitly(tenant):
    record_objection(tenant=tenant, subject_key=SK)
    lift_objection(tenant=tenant, subject_key=SK)
    state = SubjectState.objects.for_tenant(tenant).get(subject_key=SK)
    assert (state.objected, state.do_not_ask_until) == (False, None)


# --- Listeners -----------------------------------------------------------------------------


def test_withdrawal_listeners_run_after_commit_with_the_withdrawn_purposes(
        tenant, mocker, django_capture_on_commit_callbacks):
    listener = mocker.Mock()
    register_withdrawal_listener(listener)
    try:
        record_for(tenant, SK, personalization=True)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            record_for(tenant, SK, personalization=False, analytics=False)
        listener.assert_not_called()
        for callback in callbacks:
            callback()
        listener.assert_called_once_with(tenant.pk, [SK],
                                         frozenset({"personalization", "analytics"}))
    finally:
        services._withdrawal_listeners.remove(listener)


# --- Purposes, notices, defaults -------------------------------------------------------------


def test_a_new_tenant_gets_the_default_purposes_and_a_first_notice(tenant):
    purposes = {p.key: p for p in Purpose.objects.for_tenant(tenant)}
    assert set(purposes) == {"personalization", "analytics", "cross_context_ads"}
    assert purposes["personalization"].legal_basis == "consent"
    assert not purposes["personalization"].default_granted
    assert purposes["analytics"].legal_basis == "legitimate_interest"
    assert purposes["analytics"].aggregate_only
    assert purposes["analytics"].default_granted
    assert purposes["cross_context_ads"].is_sale_or_sharing
    notice = PrivacyNotice.objects.for_tenant(tenant).get()
    assert set(notice.purposes.values_list("key", flat=True)) == set(purposes)


def test_provisioning_is_idempotent_and_keeps_the_tenants_edits(tenant):
    Purpose.objects.for_tenant(tenant).filter(key="analytics").update(name="Stats")
    provision_consent_defaults(tenant)
    assert Purpose.objects.for_tenant(tenant).count() == 3
    assert PrivacyNotice.objects.for_tenant(tenant).count() == 1
    assert Purpose.objects.for_tenant(tenant).get(key="analytics").name == "Stats"


def test_a_consent_purpose_cannot_default_to_granted(tenant):
    with pytest.raises(IntegrityError), transaction.atomic():
        PurposeFactory(tenant=tenant, legal_basis="consent", default_granted=True)


def test_renewal_is_only_required_by_a_notice_in_effect(tenant):
    notice = PrivacyNoticeFactory(tenant=tenant, effective_at=timezone.now() + timedelta(1))
    with pytest.raises(ApplicationError) as error:
        require_consent_renewal(tenant=tenant, notice=notice)
    assert error.value.code == "notice_not_effective"


def test_renewal_cannot_be_required_with_another_tenants_notice(tenant, other_tenant):
    theirs = PrivacyNotice.objects.for_tenant(other_tenant).get()
    with pytest.raises(ApplicationError):
        require_consent_renewal(tenant=tenant, notice=theirs)
    assert not Purpose.objects.for_tenant(other_tenant).filter(
        renewal_required_from__isnull=False).exists()


def test_history_proves_notice_time_and_source(tenant):
    record_consents(tenant=tenant, subject_key=SK, decisions={"personalization": True},
                    method="banner")
    detail = get_subject_consent(tenant=tenant, subject_key=SK)
    (row,) = detail.history
    assert (row.purpose.key, row.granted, row.notice.version, row.source, row.method) == (
        "personalization", True, "v1", "api", "banner")
    assert row.captured_at is not None
