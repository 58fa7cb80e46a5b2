"""'Why am I seeing this' in the portal (issue 19, item 2): a verified subject sees their
current recommendations with the interactions of theirs behind each (serving's explanations),
and removes one interaction or one item; the removal is a rectification, audited without the
raw id, and the next recommendation no longer cites it. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.events.models import Event
from apps.modeling.services import (
    artifacts_holding_subject,
    recommend_for_subject,
    serving,
    train_model,
)
from apps.privacy.models import PrivacyRequest
from apps.privacy.services import sign_portal_token
from tests.factories.events import grant_consent
from tests.factories.modeling import add_events, fan_dataset

SUBJECT = "why-subject-4711"


@pytest.fixture
def fan(tenant):
    """A subject whose one purchase of ``liked`` is explained in their recommendations
    (artifacts under the privacy tests' temporary MEDIA_ROOT; serving's cache empty)."""
    serving.clear_cache()
    planted, _key, liked = fan_dataset(tenant, SUBJECT)
    yield planted, liked
    serving.clear_cache()


def _signed_in(tenant, subject: str = SUBJECT, **client_kwargs) -> Client:
    client = Client(**client_kwargs)
    response = client.get(f"/privacy/{tenant.slug}/start",
                          {"token": sign_portal_token(tenant=tenant, subject=subject)})
    assert response.status_code == 302
    return client


def _cited(tenant, key: str) -> set[str]:
    rec = recommend_for_subject(tenant=tenant, subject_key=key, n=10, explain=True)
    return {b["item"] for item in rec.items for b in item.get("because", [])}


def _page_cites(page: str) -> set[str]:
    return set(re.findall(r'data-because="([^"]+)"', page))


def test_the_page_lists_each_recommendation_with_the_interactions_behind_it(fan):
    planted, liked = fan
    tenant, key = planted.tenant, planted.keys[SUBJECT]
    page = _signed_in(tenant).get(f"/privacy/{tenant.slug}/why").content.decode()

    rec = recommend_for_subject(tenant=tenant, subject_key=key, n=10, explain=True)
    assert rec.personalized
    for item in rec.items:
        assert f'data-item="{item["item"]}"' in page
    assert _page_cites(page) == _cited(tenant, key)
    assert liked in _page_cites(page)
    wrong = Event.objects.for_tenant(tenant).get(subject_key=key, item__external_id=liked)
    assert f'name="event" value="{wrong.event_id}"' in page
    assert f'name="item" value="{liked}"' in page
    assert "csrfmiddlewaretoken" in page


def test_removing_an_interaction_is_an_audited_rectification_the_next_recommendation_obeys(
        fan, django_capture_on_commit_callbacks):
    planted, liked = fan
    tenant, key = planted.tenant, planted.keys[SUBJECT]
    wrong = Event.objects.for_tenant(tenant).get(subject_key=key, item__external_id=liked)
    portal = _signed_in(tenant, enforce_csrf_checks=True)
    page = portal.get(f"/privacy/{tenant.slug}/why").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    with django_capture_on_commit_callbacks(execute=True):
        response = portal.post(f"/privacy/{tenant.slug}/why",
                               {"event": wrong.event_id, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    pr = PrivacyRequest.objects.for_tenant(tenant).get(kind="rectification")
    assert response["Location"].endswith(f"/why?removed={pr.reference}")
    assert pr.status == "completed"
    assert pr.subject_key == key

    assert not Event.objects.for_tenant(tenant).filter(pk=wrong.pk).exists()
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 6
    assert artifacts_holding_subject(tenant, key) == []   # before the page returned
    assert liked not in _cited(tenant, key)

    audited = AuditEvent.objects.for_tenant(tenant).filter(action="privacy.store_rectified")
    assert {a.details["store"] for a in audited} >= {"events.event"}
    assert all(a.details["reference"] == pr.reference[:8] for a in audited)
    trail = json.dumps([[a.action, a.actor_id, a.target_id, a.details]
                        for a in AuditEvent.objects.for_tenant(tenant)])
    assert SUBJECT not in trail
    assert key not in trail

    confirmed = portal.get(response["Location"]).content.decode()
    assert f"/requests/{pr.reference}" in confirmed
    # After the retrain the subject is personalized again, from what remains only.
    train_model(tenant=tenant)
    page = portal.get(f"/privacy/{tenant.slug}/why").content.decode()
    assert _page_cites(page)
    assert liked not in _page_cites(page)


def test_removing_an_item_removes_every_interaction_with_it(fan,
                                                            django_capture_on_commit_callbacks):
    planted, liked = fan
    tenant, key = planted.tenant, planted.keys[SUBJECT]
    add_events(tenant, SUBJECT, [liked], subject_key=key, type="view", start_minutes_ago=50)
    assert Event.objects.for_tenant(tenant).filter(subject_key=key,
                                                   item__external_id=liked).count() == 2
    portal = _signed_in(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        response = portal.post(f"/privacy/{tenant.slug}/why", {"item": liked})
    assert response.status_code == 302
    assert not Event.objects.for_tenant(tenant).filter(subject_key=key,
                                                       item__external_id=liked).exists()
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 6
    assert artifacts_holding_subject(tenant, key) == []


def test_another_subjects_interaction_cannot_be_removed(fan):
    planted, _ = fan
    tenant = planted.tenant
    other = Event.objects.for_tenant(tenant).filter(
        subject_key=planted.keys[planted.subjects[0]]).first()
    portal = _signed_in(tenant)
    response = portal.post(f"/privacy/{tenant.slug}/why", {"event": other.event_id})
    assert response.status_code == 400
    assert "no longer in your history" in response.content.decode()
    assert Event.objects.for_tenant(tenant).filter(pk=other.pk).exists()
    assert not PrivacyRequest.objects.for_tenant(tenant).exists()
    assert artifacts_holding_subject(tenant, planted.keys[SUBJECT])


def test_a_removal_without_the_csrf_token_is_refused(fan):
    planted, liked = fan
    tenant, key = planted.tenant, planted.keys[SUBJECT]
    portal = _signed_in(tenant, enforce_csrf_checks=True)
    response = portal.post(f"/privacy/{tenant.slug}/why", {"item": liked})
    assert response.status_code == 403
    assert Event.objects.for_tenant(tenant).filter(subject_key=key,
                                                   item__external_id=liked).exists()


def test_the_page_needs_a_verified_visitor_of_this_tenant(fan, other_tenant):
    planted, _ = fan
    tenant = planted.tenant
    assert Client().get(f"/privacy/{tenant.slug}/why").status_code == 403
    # A session opened at another tenant's portal does not open this one.
    visitor = _signed_in(other_tenant, subject=SUBJECT)
    assert visitor.get(f"/privacy/{tenant.slug}/why").status_code == 403
    assert visitor.post(f"/privacy/{tenant.slug}/why", {"item": "rare"}).status_code == 403


def test_without_personalization_the_page_says_why(tenant):
    grant_consent(tenant, SUBJECT)
    page = _signed_in(tenant).get(f"/privacy/{tenant.slug}/why")
    assert page.status_code == 200
    assert 'id="not-personalized"' in page.content.decode()
    assert "no recommendation model is in service" in page.content.decode()
