"""The policy table of request kinds (``apps/privacy/kinds.py``): every kind end to end, a
throw-away kind picked up by creation, deadlines, verification, fulfilment, forms and API
without edits elsewhere, and a kind the table does not hold refused everywhere."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import transaction

from apps.consent.selectors import get_subject_consent
from apps.consent.services import create_purpose
from apps.core.exceptions import ApplicationError
from apps.core.jobs import DurableJob, finish_job
from apps.events.models import Event
from apps.privacy import kinds
from apps.privacy.forms import LogRequestForm, PortalRequestForm
from apps.privacy.kinds import TABLE, ClockRule, RequestKind, get_kind
from apps.privacy.models import DataExport, ErasureTombstone, FulfilmentJob, PrivacyRequest
from apps.privacy.services import (
    Contact,
    create_privacy_request,
    extend_privacy_request,
    fulfil_now,
    run_fulfilment,
    transition_privacy_request,
    verify_privacy_request,
)
from apps.privacy.services.jobs import begin_job, run_step
from apps.privacy.services.lifecycle import lock_request
from apps.tenants.services import pseudonymize
from tests.factories.privacy import seed_subject

URL = "/api/v1/privacy-requests"
SUBJECT = "alice@example.com"
Status = PrivacyRequest.Status



def _jobs(pr: PrivacyRequest) -> Any:
    return FulfilmentJob.objects.for_tenant(pr.tenant_id).filter(privacy_request=pr)

def _create(tenant: Any, kind: str, *, regime: str = "gdpr", details: dict | None = None,
            subject: str = SUBJECT, **kwargs: Any) -> PrivacyRequest:
    """A request received by mail (so nothing verifies it but the table's own rule)."""
    return create_privacy_request(
        tenant=tenant, kind=kind, regime=regime, channel=PrivacyRequest.Channel.MAIL,
        subject_key=pseudonymize(tenant, subject), contact=Contact(SUBJECT, SUBJECT),
        payload=details, origin="http://testserver", **kwargs)


# --- The table ----------------------------------------------------------------------------------


def test_the_kinds_and_their_labels_are_those_the_api_and_readme_name():
    assert list(TABLE) == ["access", "portability", "erasure", "rectification",
                           "restriction", "objection", "opt_out", "limit_sensitive"]
    assert PrivacyRequest.Kind.values == list(TABLE)
    assert PrivacyRequest.Kind.ERASURE == "erasure"
    assert PrivacyRequest.Kind.ERASURE.label == "Erasure (GDPR Art. 17 / CCPA delete)"
    assert PrivacyRequest._meta.get_field("kind").choices == PrivacyRequest.Kind.choices


@pytest.mark.parametrize("kind", list(TABLE.values()), ids=list(TABLE))
def test_every_kind_is_fully_declared(kind: RequestKind):
    assert set(kind.clocks) == set(PrivacyRequest.Regime.values)
    assert callable(kind.fulfil_function)
    kind.ensure_resolvable()
    assert all([kind.label, kind.portal_label, kind.portal_hint])


def test_forms_offer_exactly_the_tables_kinds():
    assert [v for v, _ in PortalRequestForm().fields["kind"].choices] == list(TABLE)
    assert [v for v, _ in LogRequestForm().fields["kind"].choices] == list(TABLE)


# --- Every kind, end to end ---------------------------------------------------------------------

#: What each kind carries in the end-to-end test.
DETAILS: dict[str, dict[str, Any]] = {"rectification": {"level": "session"}}


def _consent(tenant: Any, key: str) -> Any:
    return get_subject_consent(tenant=tenant, subject_key=key)


def _chosen(tenant: Any, key: str, purpose: str) -> Any:
    return {d.purpose.key: d.chosen for d in _consent(tenant, key).purposes}[purpose]


def _exported(tenant: Any, pr: PrivacyRequest, key: str) -> None:
    assert pr.result["export"]["size"] > 0
    assert DataExport.objects.for_tenant(tenant).filter(privacy_request=pr).exists()
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 2


def _erased(tenant: Any, pr: PrivacyRequest, key: str) -> None:
    assert pr.result["receipt"]["verification"]["hits"] == 0
    assert not Event.objects.for_tenant(tenant).filter(subject_key=key).exists()
    assert ErasureTombstone.objects.for_tenant(tenant).filter(privacy_request=pr).exists()


def _rectified(tenant: Any, pr: PrivacyRequest, key: str) -> None:
    assert pr.result["rectification"]["level"] == "session"
    assert _consent(tenant, key).chosen_level == "session"


def _restricted(tenant: Any, pr: PrivacyRequest, key: str) -> None:
    assert pr.result["applied"] == {"restricted": True}
    assert _consent(tenant, key).view.restricted


def _objected(tenant: Any, pr: PrivacyRequest, key: str) -> None:
    assert pr.result["applied"] == {"objected": True}
    assert _consent(tenant, key).view.objected


def _opted_out(tenant: Any, pr: PrivacyRequest, key: str) -> None:
    assert pr.result["applied"] == {"withdrawn_purposes": ["cross_context_ads"]}
    assert _chosen(tenant, key, "cross_context_ads") is False
    assert _chosen(tenant, key, "health_tips") is not False


def _limited(tenant: Any, pr: PrivacyRequest, key: str) -> None:
    assert pr.result["applied"] == {"withdrawn_purposes": ["health_tips"]}
    assert _chosen(tenant, key, "health_tips") is False
    assert _chosen(tenant, key, "cross_context_ads") is not False


#: The outcome each kind must leave. A kind added to the table without its line here fails
#: ``test_every_kind_has_an_expected_outcome``.
EXPECTED: dict[str, Callable[[Any, PrivacyRequest, str], None]] = {
    "access": _exported, "portability": _exported, "erasure": _erased,
    "rectification": _rectified, "restriction": _restricted, "objection": _objected,
    "opt_out": _opted_out, "limit_sensitive": _limited,
}


def test_every_kind_has_an_expected_outcome():
    assert set(EXPECTED) == set(TABLE)


@pytest.mark.parametrize("regime", ["gdpr", "ccpa"])
@pytest.mark.parametrize("value", list(TABLE))
def test_every_kind_end_to_end(tenant, oncommit, mailoutbox, value, regime):
    """Create (as the table's clock says) → verify, if the table says so → fulfil (at once
    or by its job) → completed, with the kind's own outcome and the completion email."""
    kind = get_kind(value)
    create_purpose(tenant=tenant, key="health_tips", name="Health tips",
                   description="Uses your health interests.", uses_sensitive_data=True)
    key = seed_subject(tenant, SUBJECT, events=2)
    received = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
    with time_machine.travel(received + timedelta(hours=1), tick=False), oncommit():
        pr = _create(tenant, value, regime=regime, details=DETAILS.get(value),
                     received_at=received)
    assert pr.due_at == _due(kind.clocks[regime], received)
    if kind.needs_verification:
        assert pr.status == Status.RECEIVED
        assert not _jobs(pr).exists()
        with oncommit():
            verify_privacy_request(privacy_request=pr,
                                   method=PrivacyRequest.Verification.STAFF)
    else:
        assert pr.verification_method == PrivacyRequest.Verification.NOT_REQUIRED
    pr.refresh_from_db()
    assert pr.status == Status.COMPLETED
    assert _jobs(pr).exists() == kind.as_job
    EXPECTED[value](tenant, pr, key)
    assert [m for m in mailoutbox if "completed" in m.subject]
    assert (bytes(pr.contact_ciphertext) != b"") == kind.produces_export


def _due(rule: ClockRule, received: datetime) -> datetime:
    """The table's clock counted by hand, for a Monday without holidays."""
    if rule.unit == "business_days":
        weeks, days = divmod(rule.answer, 5)
        return received + timedelta(weeks=weeks, days=days)
    if rule.unit == "days":
        return received + timedelta(days=rule.answer)
    return received.replace(month=received.month + rule.answer)


# --- A throw-away kind ------------------------------------------------------------------------


def fulfil_courtesy(*, privacy_request: PrivacyRequest, actor: Any = None) -> None:
    """Fulfil function of the throw-away kind: records its details and completes."""
    pr = privacy_request
    transition_privacy_request(pr, to=Status.IN_PROGRESS, actor=actor)
    pr.result = {**pr.result, "courtesy": dict(pr.payload) or {"note": "nothing to do"}}
    pr.save(update_fields=["result", "updated_at"])
    transition_privacy_request(pr, to=Status.COMPLETED, actor=actor)


def clean_courtesy(payload: Any) -> dict[str, Any]:
    if set(payload) - {"tone"}:
        raise ApplicationError("Only a tone.", code="invalid_details")
    return {"tone": str(payload["tone"])}


def courtesy_job(*, job: FulfilmentJob) -> None:
    """Job function of the throw-away job kind: one checkpointed step, then completed."""
    pr = begin_job(job)
    if pr is None:
        return
    step = run_step(job, "courtesy", lambda: {"count": 1})
    with transaction.atomic():
        locked = lock_request(pr)
        locked.result = {**locked.result, "courtesy_job": step}
        locked.save(update_fields=["result", "updated_at"])
        transition_privacy_request(locked, to=Status.COMPLETED)
        finish_job(job, outcome="done")


COURTESY = RequestKind(
    value="courtesy", label="Courtesy (test only)", portal_label="Be nice to me",
    portal_hint="A kind that exists only in this test.",
    clocks={"gdpr": ClockRule("days", 10, extension=5),
            "ccpa": ClockRule("business_days", 3)},
    fulfil=f"{__name__}.fulfil_courtesy", details=f"{__name__}.clean_courtesy")
COURTESY_JOB = RequestKind(
    value="courtesy_job", label="Courtesy by job (test only)", portal_label="Be nice later",
    portal_hint="A job kind that exists only in this test.",
    clocks={"gdpr": ClockRule("days", 10), "ccpa": ClockRule("days", 10)},
    fulfil=f"{__name__}.courtesy_job", as_job=True)


@pytest.fixture
def register_kind(monkeypatch) -> Callable[[RequestKind], RequestKind]:
    """Adds a kind to the table for one test (one entry: nothing else is edited);
    ``monkeypatch`` takes it out again."""
    def register(kind: RequestKind) -> RequestKind:
        monkeypatch.setitem(kinds.TABLE, kind.value, kind)
        return kind
    return register


def test_a_new_kind_is_created_clocked_verified_and_fulfilled(tenant, oncommit,
                                                              register_kind):
    register_kind(COURTESY)
    received = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)  # a Friday
    with time_machine.travel(received + timedelta(hours=1), tick=False):
        pr = _create(tenant, "courtesy", details={"tone": "warm"}, received_at=received)
        # Another subject: the same one's second open courtesy request would be this one.
        ccpa = _create(tenant, "courtesy", regime="ccpa", received_at=received,
                       subject="bob@example.com")
        assert pr.status == Status.RECEIVED  # the table says it needs verification
        assert pr.due_at == received + timedelta(days=10)
        assert ccpa.due_at == received + timedelta(days=5)  # 3 business days: Wednesday
        assert pr.get_kind_display() == "Courtesy (test only)"
        extended = extend_privacy_request(privacy_request=pr, reason="Busy.")
        assert extended.due_at == received + timedelta(days=15)
        with oncommit():
            verify_privacy_request(privacy_request=pr,
                                   method=PrivacyRequest.Verification.STAFF)
    pr.refresh_from_db()
    assert pr.status == Status.COMPLETED
    assert pr.result["courtesy"] == {"tone": "warm"}
    with pytest.raises(ApplicationError) as refused:
        _create(tenant, "courtesy", details={"volume": 11})
    assert refused.value.code == "invalid_details"
    with pytest.raises(ApplicationError) as refused:
        _create(tenant, "restriction", details={"tone": "warm"})
    assert refused.value.code == "unexpected_details"
    assert "rectification or courtesy" in refused.value.message


def test_a_new_kind_reaches_the_api_forms_and_portal(tenant, api, oncommit, portal,
                                                     register_kind):
    register_kind(COURTESY)
    with oncommit():
        response = api.post(URL, {"kind": "courtesy", "subject": "u-1",
                                  "details": {"tone": "dry"}}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "completed"
    assert response.json()["result"] == {"courtesy": {"tone": "dry"}}
    assert PortalRequestForm({"kind": "courtesy", "regime": "gdpr",
                              "identifier": SUBJECT}).is_valid()
    assert "Be nice to me" in portal.get(f"/privacy/{tenant.slug}/").content.decode()


def test_a_new_job_kind_runs_as_a_durable_job(tenant, oncommit, register_kind):
    register_kind(COURTESY_JOB)
    pr = _create(tenant, "courtesy_job")
    with oncommit():
        verify_privacy_request(privacy_request=pr, method=PrivacyRequest.Verification.STAFF)
    pr.refresh_from_db()
    assert pr.status == Status.COMPLETED
    assert pr.result["courtesy_job"]["count"] == 1
    job = _jobs(pr).get()
    assert job.status == DurableJob.Status.SUCCEEDED


# --- Kinds the table does not hold --------------------------------------------------------------


def test_an_unknown_kind_is_refused_by_the_service(tenant):
    with pytest.raises(ApplicationError) as refused:
        _create(tenant, "forget-me")
    assert refused.value.code == "invalid_kind"
    assert refused.value.details["allowed"] == list(TABLE)
    assert not PrivacyRequest.all_tenants.exists()  # nothing stored, in any tenant


def test_an_unknown_kind_is_refused_by_the_api_with_the_error_shape(tenant, api, oncommit):
    with oncommit():
        response = api.post(URL, {"kind": "forget-me", "subject": "u-1"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "kind" in response.json()["error"]["details"]
    assert not PrivacyRequest.all_tenants.exists()  # nothing stored, in any tenant


@pytest.mark.parametrize("broken", [
    replace(COURTESY, fulfil="apps.privacy.services.flags.no_such_function"),
    replace(COURTESY, details="no.such.module.clean"),
    replace(COURTESY, clocks={"gdpr": ClockRule("days", 10)}),  # no CCPA clock
], ids=["fulfil", "details", "clock"])
def test_an_unmapped_kind_is_refused_before_anything_is_stored(tenant, api, oncommit,
                                                               register_kind, broken):
    register_kind(broken)
    with pytest.raises(ApplicationError) as refused:
        _create(tenant, "courtesy", regime="ccpa")
    assert refused.value.code == "unmapped_kind"
    with oncommit():
        response = api.post(URL, {"kind": "courtesy", "subject": "u-1", "regime": "ccpa"},
                            format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unmapped_kind"
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not PrivacyRequest.all_tenants.exists()  # nothing stored, in any tenant


def test_a_stored_request_whose_kind_left_the_table_is_refused_not_guessed(tenant, api,
                                                                           oncommit):
    pr = _create(tenant, "access")  # received, waiting for verification
    PrivacyRequest.objects.for_tenant(pr.tenant_id).filter(pk=pr.pk).update(kind="retired")
    pr.refresh_from_db()
    with pytest.raises(ApplicationError) as refused:
        verify_privacy_request(privacy_request=pr, method=PrivacyRequest.Verification.STAFF)
    assert refused.value.code == "invalid_kind"
    pr.refresh_from_db()
    assert pr.status == Status.RECEIVED  # the verification rolled back with the refusal
    PrivacyRequest.objects.for_tenant(pr.tenant_id).filter(pk=pr.pk).update(status=Status.VERIFIED)
    pr.refresh_from_db()
    with pytest.raises(ApplicationError):
        fulfil_now(privacy_request=pr)
    job = FulfilmentJob.objects.create(tenant=tenant, privacy_request=pr)
    run_fulfilment(job=job)
    job.refresh_from_db()
    assert job.status == DurableJob.Status.FAILED  # for good: no retry can help
    assert "retired" in job.last_error
    body = api.get(f"{URL}/{pr.pk}").json()  # still readable, never a 500
    assert body["kind"] == "retired"
    assert body["download"] is None
