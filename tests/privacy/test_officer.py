"""The privacy officer's workflow (issue 17): the approval gate per kind, approve and deny
(services, API, admin), manual steps, assignee, internal notes, bulk actions, the queue's
CSV export and "Extend" only when allowed. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.exceptions import ApplicationError
from apps.events.models import Event
from apps.privacy import config
from apps.privacy.models import FulfilmentJob, ManualStep, PrivacyRequest, RequestNote
from apps.privacy.services import (
    add_manual_step,
    add_request_note,
    approve_privacy_request,
    assign_privacy_request,
    deny_privacy_request,
    set_manual_step,
)
from apps.tenants.models import Membership
from apps.webhooks.models import EventType as WebhookEventType
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import create_webhook_endpoint
from tests.factories.privacy import make_request, seed_subject
from tests.factories.tenants import MembershipFactory

URL = "/api/v1/privacy-requests"
LIST = "/admin/privacy/privacyrequest/"
Status = PrivacyRequest.Status


def hold(tenant, *kinds: str, steps: dict | None = None) -> None:
    tenant.settings = {**tenant.settings, config.APPROVAL_KINDS_SETTING: list(kinds)}
    if steps is not None:
        tenant.settings[config.MANUAL_STEPS_SETTING] = steps
    tenant.save()


def member(tenant, role=Membership.Role.OWNER) -> Client:
    membership = MembershipFactory(tenant=tenant, role=role)
    client = Client()
    client.force_login(membership.user)
    client.user = membership.user  # type: ignore[attr-defined]
    return client


def _actions(tenant, pr) -> list[str]:
    return list(AuditEvent.objects.for_tenant(tenant).filter(target_id=str(pr.pk))
                .order_by("sequence").values_list("action", flat=True))


def _portal_request(tenant, kind="access", subject="alice@example.com", **kwargs):
    return make_request(tenant, kind, subject, channel="portal", **kwargs)


# --- The gate ---------------------------------------------------------------------------------


def test_a_verified_request_of_a_held_kind_waits_and_nothing_runs(tenant, oncommit):
    hold(tenant, "erasure")
    MembershipFactory(tenant=tenant, role=Membership.Role.OWNER)
    key = seed_subject(tenant, "alice@example.com", events=3)
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    assert pr.status == Status.AWAITING_APPROVAL
    assert pr.verified_at is not None
    assert not FulfilmentJob.objects.for_tenant(tenant).filter(privacy_request=pr).exists()
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 3
    assert "privacy.request_awaiting_approval" in _actions(tenant, pr)
    assert any("awaits approval" in m.subject for m in mail.outbox)  # the staff are told


def test_kinds_not_listed_are_fulfilled_at_once_as_before(tenant, oncommit):
    hold(tenant, "erasure")
    with oncommit():
        pr = make_request(tenant, "restriction", "alice@example.com")
    assert pr.status == Status.COMPLETED


def test_approval_fulfils_the_request(tenant, oncommit):
    hold(tenant, "erasure")
    key = seed_subject(tenant, "alice@example.com", events=3)
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    owner = member(tenant)
    with oncommit():
        approved = approve_privacy_request(privacy_request=pr, actor=owner.user)
    assert approved.approved_at is not None
    pr.refresh_from_db()
    assert pr.status == Status.COMPLETED
    assert pr.approved_by == owner.user
    assert not Event.objects.for_tenant(tenant).filter(subject_key=key).exists()
    actions = _actions(tenant, pr)
    assert actions.index("privacy.request_approved") < actions.index(
        "privacy.request_completed")


def test_a_held_flag_kind_is_applied_on_approval(tenant, oncommit):
    hold(tenant, "restriction")
    with oncommit():
        pr = make_request(tenant, "restriction", "alice@example.com")
        assert pr.status == Status.AWAITING_APPROVAL
        pr = approve_privacy_request(privacy_request=pr)
    assert pr.status == Status.COMPLETED
    assert pr.result["applied"]


def test_denial_rejects_and_emails_the_reason(tenant, oncommit):
    hold(tenant, "access")
    with oncommit():
        pr = _portal_request(tenant, "access")
    assert pr.status == Status.AWAITING_APPROVAL
    mail.outbox.clear()
    with oncommit():
        denied = deny_privacy_request(privacy_request=pr, reason="We hold no such account.")
    assert denied.status == Status.REJECTED
    assert denied.rejection_reason == "We hold no such account."
    [message] = [m for m in mail.outbox if m.to == ["alice@example.com"]]
    assert "We hold no such account." in message.body
    assert "supervisory" in message.body  # the right to complain (GDPR Art. 12(4))
    assert not FulfilmentJob.objects.for_tenant(tenant).exists()
    assert "privacy.request_denied" in _actions(tenant, pr)


def test_a_denial_needs_a_reason_and_both_need_the_right_status(tenant, oncommit):
    hold(tenant, "access")
    with oncommit():
        held = make_request(tenant, "access", "alice@example.com")
        done = make_request(tenant, "restriction", "alice@example.com")
    with pytest.raises(ApplicationError) as empty:
        deny_privacy_request(privacy_request=held, reason="  ")
    assert empty.value.code == "reason_required"
    for act in (lambda: approve_privacy_request(privacy_request=done),
                lambda: deny_privacy_request(privacy_request=done, reason="No.")):
        with pytest.raises(ApplicationError) as wrong:
            act()
        assert (wrong.value.code, wrong.value.status_code) == ("not_awaiting_approval", 409)
        assert wrong.value.details == {"status": "completed"}


def test_an_unreadable_setting_holds_every_kind(tenant, oncommit):
    tenant.settings = {**tenant.settings, config.APPROVAL_KINDS_SETTING: "erasure"}
    tenant.save()
    with oncommit():
        pr = make_request(tenant, "restriction", "alice@example.com")
    assert pr.status == Status.AWAITING_APPROVAL


@pytest.mark.parametrize("value", ["erasure", ["erasure", "forget"], [1], {"erasure": True}])
def test_the_setting_check_refuses_what_is_not_a_list_of_kinds(value):
    with pytest.raises(ApplicationError) as refused:
        config.clean_approval_kinds(value)
    assert refused.value.details["field"] == "privacy_approval_kinds"


def test_the_setting_check_keeps_a_list_of_kinds_in_table_order():
    assert config.clean_approval_kinds(["erasure", "access", "erasure"]) == ["access",
                                                                             "erasure"]
    assert config.clean_manual_steps({"erasure": [" Legal hold? ", "Legal hold?"]}) == {
        "erasure": ["Legal hold?"]}
    with pytest.raises(ApplicationError):
        config.clean_manual_steps({"erasure": [""]})


def test_status_changes_are_sent_as_webhooks_by_name(tenant, oncommit, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    create_webhook_endpoint(tenant=tenant, url="http://127.0.0.1:9/hook",
                            events=[e for e in WebhookEventType.values
                                    if e.startswith("privacy_request.")])
    hold(tenant, "erasure")
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
        deny_privacy_request(privacy_request=pr, reason="No.")
    sent = list(WebhookDelivery.objects.for_tenant(tenant).order_by("pk")
                .values_list("event_type", flat=True))
    assert sent == ["privacy_request.received", "privacy_request.verified",
                    "privacy_request.awaiting_approval", "privacy_request.rejected"]


# --- Manual steps -----------------------------------------------------------------------------


def test_configured_manual_steps_hold_the_request_until_ticked(tenant, oncommit):
    hold(tenant, steps={"erasure": ["Check the legal hold list", "Tell the CRM team"]})
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    assert pr.status == Status.AWAITING_APPROVAL  # not listed, but it has steps
    steps = list(ManualStep.objects.for_tenant(tenant).filter(privacy_request=pr))
    assert [s.label for s in steps] == ["Check the legal hold list", "Tell the CRM team"]
    with pytest.raises(ApplicationError) as open_steps:
        approve_privacy_request(privacy_request=pr)
    assert open_steps.value.code == "manual_steps_open"
    assert open_steps.value.details["open_steps"] == ["Check the legal hold list",
                                                      "Tell the CRM team"]
    owner = member(tenant)
    for step in steps:
        ticked = set_manual_step(step=step, done=True, actor=owner.user)
        assert ticked.done_by == owner.user
    with oncommit():
        approve_privacy_request(privacy_request=pr)
    pr.refresh_from_db()
    assert pr.status == Status.COMPLETED
    assert _actions(tenant, pr).count("privacy.manual_step_done") == 2


def test_a_step_added_before_verification_holds_the_request(tenant, oncommit):
    with oncommit():
        pr = _portal_request(tenant, "access", verified=False)
    add_manual_step(privacy_request=pr, label="Ask the shop for the order number")
    with pytest.raises(ApplicationError) as twice:
        add_manual_step(privacy_request=pr, label="Ask the shop for the order number")
    assert twice.value.code == "step_exists"
    from apps.privacy.services import verify_privacy_request

    with oncommit():
        verify_privacy_request(privacy_request=pr, method=PrivacyRequest.Verification.STAFF)
    pr.refresh_from_db()
    assert pr.status == Status.AWAITING_APPROVAL


def test_steps_cannot_change_once_the_request_is_past_them(tenant, oncommit):
    with oncommit():
        pr = make_request(tenant, "restriction", "alice@example.com")
    with pytest.raises(ApplicationError) as closed:
        add_manual_step(privacy_request=pr, label="Too late")
    assert closed.value.code == "steps_closed"


# --- Assignee and notes -----------------------------------------------------------------------


def test_a_request_is_assigned_to_a_member_of_its_tenant_only(tenant, other_tenant, oncommit):
    with oncommit():
        pr = make_request(tenant, "access", "alice@example.com")
    mine = MembershipFactory(tenant=tenant, role=Membership.Role.ANALYST).user
    foreign = MembershipFactory(tenant=other_tenant, role=Membership.Role.OWNER).user
    assert assign_privacy_request(privacy_request=pr, assignee=mine).assignee == mine
    with pytest.raises(ApplicationError) as refused:
        assign_privacy_request(privacy_request=pr, assignee=foreign)
    assert refused.value.code == "not_a_member"
    assert "privacy.request_assigned" in _actions(tenant, pr)


def test_internal_notes_are_kept_and_audited(tenant, oncommit):
    with oncommit():
        pr = make_request(tenant, "access", "alice@example.com")
    note = add_request_note(privacy_request=pr, text="Called the shop; waiting.")
    assert RequestNote.objects.for_tenant(tenant).get().pk == note.pk
    assert "privacy.note_added" in _actions(tenant, pr)
    with pytest.raises(ApplicationError):
        add_request_note(privacy_request=pr, text=" ")


# --- API --------------------------------------------------------------------------------------


def _held(tenant, api, oncommit, kind="erasure", subject="user-1"):
    hold(tenant, kind)
    with oncommit():
        response = api.post(URL, {"kind": kind, "subject": subject}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "awaiting_approval"
    return response.json()["id"]


def test_the_api_approves_a_held_request(tenant, api, oncommit):
    request_id = _held(tenant, api, oncommit)
    with oncommit():
        response = api.post(f"{URL}/{request_id}/approve")
    assert response.status_code == 200
    assert response.json()["approval"]["approved_at"]
    assert api.get(f"{URL}/{request_id}").json()["status"] == "completed"
    again = api.post(f"{URL}/{request_id}/approve")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_awaiting_approval"
    assert again.json()["error"]["details"] == {"status": "completed"}


def test_the_api_denies_a_held_request_with_a_reason(tenant, api, oncommit):
    request_id = _held(tenant, api, oncommit)
    missing = api.post(f"{URL}/{request_id}/deny", {}, format="json")
    assert missing.status_code == 400
    assert "reason" in missing.json()["error"]["details"]
    blank = api.post(f"{URL}/{request_id}/deny", {"reason": "  "}, format="json")
    assert blank.status_code == 400
    with oncommit():
        response = api.post(f"{URL}/{request_id}/deny", {"reason": "Not our customer."},
                            format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "rejected"
    assert body["rejection"]["reason"] == "Not our customer."


def test_approve_and_deny_need_the_privacy_scope(tenant, api, make_client, oncommit):
    request_id = _held(tenant, api, oncommit)
    client = make_client(tenant, ["events:write"])
    for action, body in (("approve", None), ("deny", {"reason": "x"})):
        response = client.post(f"{URL}/{request_id}/{action}", body, format="json")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "missing_scope"
    assert PrivacyRequest.objects.for_tenant(tenant).get().status == "awaiting_approval"


def test_another_tenants_key_cannot_approve_deny_or_see(tenant, api, other_api, oncommit):
    request_id = _held(tenant, api, oncommit)
    for action, body in (("approve", None), ("deny", {"reason": "x"})):
        response = other_api.post(f"{URL}/{request_id}/{action}", body, format="json")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert other_api.get(f"{URL}/{request_id}").status_code == 404
    assert PrivacyRequest.objects.for_tenant(tenant).get().status == "awaiting_approval"


# --- Admin ------------------------------------------------------------------------------------


def test_the_owner_approves_and_denies_from_the_request_page(tenant, oncommit):
    hold(tenant, "access", "erasure")
    with oncommit():
        first = _portal_request(tenant, "access")
        second = _portal_request(tenant, "erasure")
    owner = member(tenant)
    page = owner.get(f"{LIST}{first.pk}/change/").content.decode()
    assert 'id="approve"' in page
    assert 'id="deny"' in page
    with oncommit():
        owner.post(f"{LIST}{first.pk}/act/approve/")
        owner.post(f"{LIST}{second.pk}/act/deny/", {"reason": "Legal hold."})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.COMPLETED
    assert (second.status, second.rejection_reason) == (Status.REJECTED, "Legal hold.")


def test_viewers_and_other_tenants_members_cannot_act(tenant, other_tenant, oncommit):
    hold(tenant, "access")
    with oncommit():
        pr = _portal_request(tenant, "access")
    viewer = member(tenant, Membership.Role.VIEWER)
    stranger = member(other_tenant)
    assert viewer.post(f"{LIST}{pr.pk}/act/approve/").status_code == 403
    assert stranger.post(f"{LIST}{pr.pk}/act/approve/").status_code == 404
    assert stranger.post(f"{LIST}{pr.pk}/act/deny/", {"reason": "x"}).status_code == 404
    assert stranger.get(f"{LIST}{pr.pk}/change/").status_code in {302, 404}
    pr.refresh_from_db()
    assert pr.status == Status.AWAITING_APPROVAL


def test_steps_notes_and_assignee_from_the_request_page(tenant, oncommit):
    hold(tenant, "access")
    with oncommit():
        pr = _portal_request(tenant, "access")
    owner = member(tenant)
    owner.post(f"{LIST}{pr.pk}/act/add-step/", {"label": "Check the order system"})
    step = ManualStep.objects.for_tenant(tenant).get()
    page = owner.get(f"{LIST}{pr.pk}/change/").content.decode()
    assert "Check the order system" in page
    assert 'id="approve" value="Approve" disabled' in page
    owner.post(f"{LIST}{pr.pk}/act/step/", {"step": step.pk, "done": "1"})
    owner.post(f"{LIST}{pr.pk}/act/note/", {"text": "Order system checked."})
    owner.post(f"{LIST}{pr.pk}/act/assign/", {"assignee": owner.user.pk})
    pr.refresh_from_db()
    step.refresh_from_db()
    assert step.is_done
    assert pr.assignee == owner.user
    page = owner.get(f"{LIST}{pr.pk}/change/").content.decode()
    assert "Order system checked." in page
    assert 'id="approve" value="Approve">' in page


def test_extend_is_offered_only_while_an_extension_is_allowed(tenant, oncommit):
    with oncommit():
        fresh = _portal_request(tenant, "access", verified=False)
        late = _portal_request(tenant, "erasure", verified=False,
                               received_at=timezone.now() - timedelta(days=40))
    owner = member(tenant)
    assert 'id="extend-reason"' in owner.get(f"{LIST}{fresh.pk}/change/").content.decode()
    assert 'id="extend-reason"' not in owner.get(f"{LIST}{late.pk}/change/").content.decode()


def test_bulk_approve_deny_and_assign(tenant, oncommit):
    hold(tenant, "access", "erasure", "portability")
    with oncommit():
        prs = [_portal_request(tenant, kind) for kind in ("access", "erasure", "portability")]
    owner = member(tenant)
    ids = [str(pr.pk) for pr in prs]
    owner.post(LIST, {"action": "assign_to_me", "_selected_action": ids})
    assert set(PrivacyRequest.objects.for_tenant(tenant).values_list(
        "assignee_id", flat=True)) == {owner.user.pk}
    with oncommit():
        owner.post(LIST, {"action": "approve_selected", "_selected_action": ids[:1]})
    form = owner.post(LIST, {"action": "deny_selected", "_selected_action": ids[1:]})
    assert form.status_code == 200
    assert "Reason sent to the subjects" in form.content.decode()
    with oncommit():
        owner.post(LIST, {"action": "deny_selected", "_selected_action": ids[1:],
                          "deny_reason_given": "1", "reason": "Duplicate account."})
    statuses = dict(PrivacyRequest.objects.for_tenant(tenant).values_list("pk", "status"))
    assert statuses == {prs[0].pk: "completed", prs[1].pk: "rejected", prs[2].pk: "rejected"}


def test_the_queue_shows_days_left_and_requires_input(tenant, oncommit):
    hold(tenant, steps={"access": ["Check"]})
    with oncommit():
        pr = _portal_request(tenant, "access")
    page = member(tenant).get(LIST).content.decode()
    assert "days left" in page.lower()
    assert "1 step" in page
    held = member(tenant).get(LIST, {"requires_input": "yes"}).content.decode()
    assert pr.reference[:8] in held


def test_the_csv_export_is_the_filtered_queue_without_identifiers(tenant, other_tenant,
                                                                   oncommit):
    hold(tenant, "access")
    with oncommit():
        held = _portal_request(tenant, "access")
        done = _portal_request(tenant, "restriction")
        foreign = _portal_request(other_tenant, "access")
    owner = member(tenant)
    response = owner.get(f"{LIST}export.csv", {"status__exact": "awaiting_approval"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = response.content.decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("reference,tenant,kind")
    assert len(lines) == 2
    assert lines[1].startswith(held.reference[:8])
    assert done.reference[:8] not in body
    assert foreign.reference[:8] not in body
    for secret in ("alice@example.com", held.subject_key, held.reference):
        assert secret not in body
    entry = AuditEvent.objects.for_tenant(tenant).get(action="privacy.queue_exported")
    assert entry.details == {"rows": 1, "filters": {"status__exact": "awaiting_approval"}}
    everything = member(other_tenant).get(f"{LIST}export.csv").content.decode()
    assert held.reference[:8] not in everything
    assert foreign.reference[:8] in everything
