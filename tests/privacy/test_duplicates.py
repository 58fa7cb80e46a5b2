"""Duplicate detection (issue 17): a second request for a subject and kind that already has
an open one makes no second request and no second job. The API answers 200 with the open
request and ``duplicate_of``; the portal says a request is already under way (to a verified
subject on the page, to anyone else by email only, so the page tells no one whether an
address has a request). Race-safe: a partial unique constraint, tested with threads on
PostgreSQL."""

from __future__ import annotations

import re
import threading

import pytest
from django.core import mail
from django.db import IntegrityError, connection, connections, transaction

from apps.privacy import config
from apps.privacy.models import FulfilmentJob, PrivacyRequest
from apps.privacy.services import file_privacy_request, sign_portal_token
from apps.tenants.services import pseudonymize
from tests.factories.privacy import make_request
from tests.factories.tenants import TenantFactory

URL = "/api/v1/privacy-requests"


def _hold(tenant, *kinds):
    tenant.settings = {**tenant.settings, config.APPROVAL_KINDS_SETTING: list(kinds)}
    tenant.save()


def test_the_api_answers_a_duplicate_with_the_open_request(tenant, api, oncommit):
    _hold(tenant, "erasure")
    with oncommit():
        first = api.post(URL, {"kind": "erasure", "subject": "user-1"}, format="json")
        second = api.post(URL, {"kind": "erasure", "subject": "user-1"}, format="json")
        other = api.post(URL, {"kind": "access", "subject": "user-1"}, format="json")
    assert first.status_code == 201
    assert first.json()["duplicate_of"] is None
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["duplicate_of"] == first.json()["id"]
    assert other.status_code == 201  # another kind is another request
    assert PrivacyRequest.objects.for_tenant(tenant).filter(kind="erasure").count() == 1


def test_five_identical_requests_make_one_request_and_one_job(tenant, api, oncommit):
    _hold(tenant, "access")  # held, so that it stays open between the requests
    for _ in range(5):
        with oncommit():
            api.post(URL, {"kind": "access", "subject": "user-2"}, format="json")
    [pr] = PrivacyRequest.objects.for_tenant(tenant)
    with oncommit():
        assert api.post(f"{URL}/{pr.pk}/approve").status_code == 200
    assert FulfilmentJob.objects.for_tenant(tenant).count() == 1
    pr.refresh_from_db()
    assert pr.status == "completed"


def test_a_closed_request_does_not_count(tenant, oncommit):
    with oncommit():
        first = make_request(tenant, "restriction", "alice@example.com")
        second = make_request(tenant, "restriction", "alice@example.com")
    assert first.status == second.status == "completed"
    assert first.pk != second.pk


def test_an_attested_duplicate_verifies_the_open_unverified_request(tenant, api, oncommit):
    with oncommit():
        waiting = make_request(tenant, "restriction", "user-9", channel="portal",
                               verified=False, email="")
        response = api.post(URL, {"kind": "restriction", "subject": "user-9"}, format="json")
    assert response.json()["duplicate_of"] == waiting.pk
    waiting.refresh_from_db()
    assert waiting.status == "completed"
    assert waiting.verification_method == "tenant_attested"


def test_other_details_than_the_open_requests_are_refused(tenant, oncommit):
    _hold(tenant, "rectification")
    key = pseudonymize(tenant, "user-3")
    common = {"tenant": tenant, "kind": "rectification", "regime": "gdpr", "channel": "api",
              "subject_key": key, "verification": "tenant_attested"}
    with oncommit():
        first = file_privacy_request(**common, payload={"level": "off"})
        same = file_privacy_request(**common, payload={"level": "off"})
    assert same.duplicate
    assert same.request.pk == first.request.pk
    from apps.core.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        file_privacy_request(**common, payload={"level": "full"})
    assert refused.value.code == "request_open"
    assert refused.value.details == {"duplicate_of": first.request.pk}


def test_the_database_refuses_a_second_open_request(tenant, oncommit):
    with oncommit():
        pr = make_request(tenant, "access", "alice@example.com", channel="portal",
                          verified=False)
    twin = PrivacyRequest(tenant=tenant, reference="twin", kind=pr.kind, regime=pr.regime,
                          channel=pr.channel, subject_key=pr.subject_key,
                          received_at=pr.received_at, due_at=pr.due_at,
                          original_due_at=pr.original_due_at)
    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()


# --- Portal -----------------------------------------------------------------------------------


def test_a_verified_subject_is_told_a_request_is_already_under_way(tenant, portal, oncommit):
    _hold(tenant, "access")
    token = sign_portal_token(tenant=tenant, subject="user-42")
    portal.get(f"/privacy/{tenant.slug}/start?token={token}")
    with oncommit():
        first = portal.post(f"/privacy/{tenant.slug}/request",
                            {"kind": "access", "regime": "gdpr"})
        second = portal.post(f"/privacy/{tenant.slug}/request",
                             {"kind": "access", "regime": "gdpr"})
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert first["Location"].endswith(f"/requests/{pr.reference}")
    assert second["Location"].endswith(f"/requests/{pr.reference}?already=1")
    page = portal.get(second["Location"]).content.decode()
    assert "already under way" in page
    assert "reviews the request" in page  # awaiting approval, in words


def test_an_unverified_duplicate_looks_the_same_and_is_told_by_email(tenant, portal,
                                                                      oncommit):
    def ask():
        with oncommit():
            return portal.post(f"/privacy/{tenant.slug}/request",
                               {"kind": "access", "regime": "gdpr",
                                "identifier": "alice@example.com"})

    first, second = ask(), ask()
    assert first["Location"] == second["Location"]  # the same "check your email" page
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert pr.status == "verifying"
    links = [m for m in mail.outbox if "verify?" in m.body]
    assert len(links) == 2  # a fresh link for the one open request
    _hold(tenant, "access")
    link = re.search(r"verify\?r=(\S+)&token=(\S+)", links[-1].body)
    with oncommit():
        portal.post(f"/privacy/{tenant.slug}/verify", {"r": link.group(1),
                                                       "token": link.group(2)})
    pr.refresh_from_db()
    assert pr.status == "awaiting_approval"
    mail.outbox.clear()
    portal.cookies.clear()  # confirming opened a portal session: a stranger has none
    third = ask()
    assert third["Location"] == first["Location"]
    assert [m.subject for m in mail.outbox if m.to == ["alice@example.com"]] == [
        f"Your privacy request to {tenant.name} is already under way"]
    assert PrivacyRequest.objects.for_tenant(tenant).count() == 1


# --- Concurrency (PostgreSQL) -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="needs PostgreSQL: a database shared by threads")
@pytest.mark.parametrize("writers", [2, 8])
def test_concurrent_identical_requests_make_one_request_and_one_job(writers):
    tenant = TenantFactory()
    _hold(tenant, "access")  # stays open: every thread must find the same request
    key = pseudonymize(tenant, "racer")
    barrier = threading.Barrier(writers)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            filing = file_privacy_request(
                tenant=tenant, kind="access", regime="gdpr", channel="api", subject_key=key,
                verification="tenant_attested")
            results.append((filing.request.pk, filing.duplicate))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len({pk for pk, _ in results}) == 1
    assert sorted(dup for _, dup in results) == [False] + [True] * (writers - 1)
    assert PrivacyRequest.objects.for_tenant(tenant).count() == 1
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert pr.status == "awaiting_approval"
    assert FulfilmentJob.objects.for_tenant(tenant).count() == 0
    from apps.privacy.services import approve_privacy_request

    approve_privacy_request(privacy_request=pr)
    assert FulfilmentJob.objects.for_tenant(tenant).count() == 1
