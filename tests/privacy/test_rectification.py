"""The rectification service (what the portal's preference center and "my data" call)."""

from __future__ import annotations

import pytest

from apps.consent.selectors import get_subject_consent
from apps.core.exceptions import ApplicationError
from apps.events.models import Event
from apps.privacy.models import PrivacyRequest
from apps.privacy.services import (
    correct_subject_data,
    find_pending_rectification,
    fulfil_now,
    submit_rectification,
)
from tests.factories.privacy import make_request, seed_subject

SUBJECT = "alice@example.com"


def _waiting(tenant) -> PrivacyRequest:
    """A verified rectification made without details (the portal's form, a letter)."""
    return make_request(tenant, "rectification", SUBJECT, channel="mail")


def test_a_verified_rectification_without_details_waits_for_them(tenant, oncommit):
    key = seed_subject(tenant, SUBJECT)
    pr = _waiting(tenant)
    assert pr.status == "verified"
    assert find_pending_rectification(tenant=tenant, subject_key=key,
                                      reference=pr.reference) == pr


@pytest.mark.parametrize("other", ["subject", "kind", "closed", "empty"])
def test_only_the_subjects_own_waiting_rectification_is_pending(tenant, oncommit, other):
    key = seed_subject(tenant, SUBJECT)
    pr = (make_request(tenant, "restriction", SUBJECT, channel="mail") if other == "kind"
          else _waiting(tenant))
    if other == "closed":
        fulfil_now(privacy_request=pr)  # staff complete it
    subject_key = "someone-else" if other == "subject" else key
    reference = "" if other == "empty" else pr.reference
    assert find_pending_rectification(tenant=tenant, subject_key=subject_key,
                                      reference=reference) is None


def test_submitted_changes_are_checked_then_applied_once(tenant, oncommit):
    key = seed_subject(tenant, SUBJECT)
    pr = _waiting(tenant)
    with pytest.raises(ApplicationError) as refused:
        submit_rectification(privacy_request=pr, changes={"level": 3})
    assert refused.value.code == "invalid_details"
    with oncommit():
        done = submit_rectification(privacy_request=pr,
                                    changes={"consents": {}, "level": "session"})
    assert done.status == "completed"
    assert done.result["rectification"]["level"] == "session"
    again = submit_rectification(privacy_request=pr, changes={"level": "off"})
    assert again.status == "completed"
    assert get_subject_consent(tenant=tenant, subject_key=key).chosen_level == "session"


def test_corrections_without_a_pending_request_make_a_verified_one(tenant, oncommit):
    key = seed_subject(tenant, SUBJECT, events=3)
    event_id = Event.objects.for_tenant(tenant).filter(subject_key=key).first().event_id
    with oncommit():
        pr = correct_subject_data(tenant=tenant, subject_key=key,
                                  changes={"delete_events": [event_id]}, contact=None)
    assert pr.kind == "rectification"
    assert pr.verification_method == PrivacyRequest.Verification.PORTAL_SESSION
    assert pr.status == "completed"
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 2
