"""The portal: requests, email verification, signed links, status, download, preference
center and "my data"; it never reveals whether a subject exists."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from apps.consent.selectors import get_subject_consent
from apps.events.models import Event
from apps.privacy.models import PortalSession, PrivacyRequest, VerificationChallenge
from apps.privacy.services import sign_portal_token
from apps.tenants.services import pseudonymize
from tests.db_search import columns_containing
from tests.factories.privacy import seed_subject

EXEMPT = {"privacy_privacyrequest.subject_key", "privacy_erasuretombstone.subject_key"}


def base(tenant) -> str:
    return f"/privacy/{tenant.slug}/"


def ask(portal, tenant, oncommit, *, kind="erasure", identifier="alice@example.com",
        regime="gdpr", **extra):
    with oncommit():
        return portal.post(base(tenant) + "request",
                           {"kind": kind, "regime": regime, "identifier": identifier, **extra})


def link_from(message) -> tuple[str, str]:
    match = re.search(r"http://testserver(/privacy/[^\s?]+/verify)\?r=([\w-]+)&token=([\w-]+)",
                      message.body)
    assert match, message.body
    return match.group(1), match.group(2), match.group(3)


def scrub(content: bytes, *values: str) -> str:
    """A page without its CSRF token (random per response) and the given values."""
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "csrf", content.decode())
    for value in values:
        text = text.replace(value, "<v>")
    return text


def confirm(portal, oncommit, message):
    path, reference, token = link_from(message)
    page = portal.get(path, {"r": reference, "token": token})
    assert page.status_code == 200
    assert token in page.content.decode()
    with oncommit():
        return portal.post(path, {"r": reference, "token": token})


def test_the_landing_page_has_the_tenants_name_and_a_labelled_form(tenant, portal):
    page = portal.get(base(tenant))
    body = page.content.decode()
    assert page.status_code == 200
    assert tenant.name in body
    assert '<label class="field" for="id_identifier">' in body
    assert "<legend>What would you like us to do?</legend>" in body
    assert "<script" not in body


def test_an_unknown_tenant_is_a_404_page(db, portal):
    assert portal.get("/privacy/no-such-tenant/").status_code == 404


def test_an_email_request_waits_for_the_emailed_link(tenant, portal, oncommit):
    response = ask(portal, tenant, oncommit)
    assert response.status_code == 302
    assert response["Location"] == base(tenant) + "request/sent?what=verify"
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert pr.status == "verifying"
    assert pr.acknowledged_at is not None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    assert "60 minutes" in mail.outbox[0].body
    assert columns_containing("alice@example.com") == []  # stored only encrypted


@pytest.mark.django_db(transaction=True)  # commits for real: files go when the step commits
def test_erasure_through_the_portal_leaves_the_key_only_in_the_proof(tenant, portal,
                                                                     oncommit):
    from apps.modeling.services import artifacts_holding_subject, train_model
    from tests.factories.modeling import add_events, configure, planted_dataset

    configure(tenant, model_algorithms=["als"])
    planted_dataset(tenant, seed=3, groups=2, subjects_per_group=6)
    key = seed_subject(tenant, "alice@example.com", events=4)
    add_events(tenant, "alice@example.com", ["g0-item1", "g0-item2", "g0-item3"],
               subject_key=key)
    train_model(tenant=tenant)
    assert artifacts_holding_subject(tenant, key)  # the model learned from her

    ask(portal, tenant, oncommit)
    done = confirm(portal, oncommit, mail.outbox[0])
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert done.status_code == 302
    assert done["Location"] == base(tenant) + f"requests/{pr.reference}"
    pr.refresh_from_db()
    assert pr.status == "completed", pr.erasure_check
    assert set(columns_containing(key)) <= EXEMPT
    assert artifacts_holding_subject(tenant, key) == []
    assert pr.result["receipt"]["model_versions"]
    status = portal.get(done["Location"]).content.decode()
    assert "Erasure receipt" in status
    assert "interaction events" in status
    assert "completed" in mail.outbox[-1].subject


def test_the_portal_answers_the_same_for_a_customer_and_a_stranger(tenant, portal, oncommit):
    seed_subject(tenant, "known@example.com", events=2)
    answers = []
    for who in ("known@example.com", "stranger@example.com"):
        mail.outbox.clear()
        response = ask(portal, tenant, oncommit, identifier=who)
        page = portal.get(response["Location"])
        body = re.sub(r"[\w-]{20,}", "<token>", mail.outbox[0].body.replace(who, "<who>"))
        answers.append((response.status_code, response["Location"], page.status_code,
                        page.content, sorted(response.cookies), mail.outbox[0].subject, body))
    assert answers[0] == answers[1]
    for kind in ("opt_out", "access"):
        statuses = {ask(portal, tenant, oncommit, kind=kind, identifier=who)["Location"]
                    for who in ("known@example.com", "stranger@example.com")}
        assert len(statuses) == 1


def test_a_wrong_token_is_refused_and_costs_an_attempt(tenant, portal, oncommit):
    ask(portal, tenant, oncommit)
    path, reference, token = link_from(mail.outbox[0])
    wrong = portal.post(path, {"r": reference, "token": token[:-2] + "xx"})
    assert wrong.status_code == 400
    assert "not valid or has expired" in wrong.content.decode()
    assert VerificationChallenge.objects.for_tenant(tenant).get().attempts == 1
    assert PrivacyRequest.objects.for_tenant(tenant).get().status == "verifying"
    unknown = portal.post(path, {"r": "x" * len(reference), "token": token})
    known = portal.post(path, {"r": reference, "token": "bad"})
    assert unknown.status_code == known.status_code == 400
    assert scrub(unknown.content, "x" * len(reference)) == scrub(known.content, reference)


def test_five_wrong_attempts_kill_the_code(tenant, portal, oncommit):
    ask(portal, tenant, oncommit)
    path, reference, token = link_from(mail.outbox[0])
    for _ in range(5):
        portal.post(path, {"r": reference, "token": "wrong-guess"})
    assert portal.post(path, {"r": reference, "token": token}).status_code == 400
    assert PrivacyRequest.objects.for_tenant(tenant).get().status == "verifying"


def test_a_token_expires_after_60_minutes(tenant, portal, oncommit):
    ask(portal, tenant, oncommit)
    path, reference, token = link_from(mail.outbox[0])
    challenge = VerificationChallenge.objects.for_tenant(tenant).get()
    with time_machine.travel(challenge.expires_at, tick=False):
        assert portal.post(path, {"r": reference, "token": token}).status_code == 400
    with time_machine.travel(challenge.expires_at - timedelta(seconds=1), tick=False), \
            oncommit():
        assert portal.post(path, {"r": reference, "token": token}).status_code == 302
    assert challenge.expires_at - challenge.created_at <= timedelta(minutes=60)


def test_a_token_works_once(tenant, portal, oncommit):
    ask(portal, tenant, oncommit, kind="access")
    assert confirm(portal, oncommit, mail.outbox[0]).status_code == 302
    path, reference, token = link_from(mail.outbox[0])
    assert portal.post(path, {"r": reference, "token": token}).status_code == 400


def test_tokens_have_at_least_128_bits(tenant, portal, oncommit):
    ask(portal, tenant, oncommit)
    _, reference, token = link_from(mail.outbox[0])
    assert len(token) >= 22
    assert len(reference) >= 22


def test_opt_out_needs_no_verification_and_is_applied_at_once(tenant, portal, oncommit):
    key = seed_subject(tenant, "alice@example.com")
    response = ask(portal, tenant, oncommit, kind="opt_out", regime="ccpa")
    assert response["Location"].endswith("what=applied")
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert pr.status == "completed"
    assert pr.verification_method == "not_required"
    states = {d.purpose.key: d for d in get_subject_consent(tenant=tenant, subject_key=key)
              .purposes}
    assert states["cross_context_ads"].chosen is False
    assert states["cross_context_ads"].source == "portal"


def test_an_account_id_cannot_be_verified_by_email(tenant, portal, oncommit):
    response = ask(portal, tenant, oncommit, identifier="customer-4711")
    assert response["Location"].endswith("what=account")
    assert not PrivacyRequest.all_tenants.exists()
    assert not mail.outbox


def test_a_form_error_is_shown_next_to_its_field(tenant, portal, oncommit):
    response = ask(portal, tenant, oncommit, kind="", identifier="")
    body = response.content.decode()
    assert response.status_code == 400
    assert 'role="alert"' in body
    assert 'aria-invalid="true"' in body
    assert "Choose what you would like us to do." in body


def test_the_portal_is_rate_limited_per_ip_and_per_identifier(tenant, portal, oncommit,
                                                              settings):
    settings.PRIVACY_PORTAL_RATE_LIMITS = {"ip": (3, 3600), "identifier": (2, 3600)}
    codes = [ask(portal, tenant, oncommit, identifier="a@example.com").status_code
             for _ in range(3)]
    assert codes == [302, 302, 429]
    other = ask(portal, tenant, oncommit, identifier="b@example.com",
                REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 429  # same client: the per-IP limit is spent
    from django.test import Client

    elsewhere = Client(REMOTE_ADDR="10.0.0.2")
    assert ask(elsewhere, tenant, oncommit, identifier="b@example.com").status_code == 302
    far = Client(REMOTE_ADDR="10.0.0.3")
    assert ask(far, tenant, oncommit, identifier="a@example.com").status_code == 429


def _cache_keys() -> list[str]:
    """Every key in the default cache: local memory (embedded run) or Redis (CI's second)."""
    from django.core.cache import caches

    backend = caches["default"]
    if isinstance(getattr(backend, "_cache", None), dict):
        return list(backend._cache)
    client = backend._cache.get_client(None)
    return [key.decode() for key in client.scan_iter("*")]


def test_the_rate_limiter_keeps_no_ip_address(tenant, portal, oncommit):
    ask(portal, tenant, oncommit)
    keys = _cache_keys()
    assert keys
    assert not any("127.0.0.1" in k or "alice" in k for k in keys)


# --- Signed links and verified sessions -----------------------------------------------------


def start(portal, tenant, token):
    return portal.get(base(tenant) + "start", {"token": token})


def test_a_signed_link_opens_a_verified_session(tenant, portal, oncommit):
    key = seed_subject(tenant, "user-42", events=3)
    response = start(portal, tenant, sign_portal_token(tenant=tenant, subject="user-42",
                                                       email="u42@example.com"))
    assert response.status_code == 302
    assert PortalSession.objects.for_tenant(tenant).get().subject_key == key
    page = portal.get(base(tenant) + "my-data").content.decode()
    assert "interaction events" in page
    assert "<td>3</td>" in page
    with oncommit():
        made = portal.post(base(tenant) + "request", {"kind": "access", "regime": "gdpr"})
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert made["Location"] == base(tenant) + f"requests/{pr.reference}"
    pr.refresh_from_db()
    assert pr.status == "completed"
    assert pr.verification_method == "portal_session"
    status = portal.get(made["Location"]).content.decode()
    assert "Download your data" in status


def test_a_signed_link_works_once(tenant, portal):
    token = sign_portal_token(tenant=tenant, subject="user-42")
    assert start(portal, tenant, token).status_code == 302
    assert start(portal, tenant, token).status_code == 400


@pytest.mark.parametrize("case", ["tampered", "expired", "too_long", "other_secret",
                                  "garbage", "empty"])
def test_a_bad_signed_link_is_refused(tenant, other_tenant, portal, case):
    now = timezone.now()
    if case == "tampered":
        token = sign_portal_token(tenant=tenant, subject="user-42")
        body, sig = token.split(".")
        token = f"{body[:-2]}AA.{sig}"
    elif case == "expired":
        with time_machine.travel(now - timedelta(minutes=16), tick=False):
            token = sign_portal_token(tenant=tenant, subject="user-42")
    elif case == "too_long":
        token = sign_portal_token(tenant=tenant, subject="user-42", ttl=timedelta(hours=2))
    elif case == "other_secret":
        token = sign_portal_token(tenant=other_tenant, subject="user-42")
    elif case == "garbage":
        token = "not.a-token"
    else:
        token = ""
    response = start(portal, tenant, token)
    assert response.status_code == 400
    assert not PortalSession.all_tenants.exists()


def test_pages_for_verified_subjects_need_a_session(tenant, portal):
    for page in ("my-data", "preferences"):
        assert portal.get(base(tenant) + page).status_code == 403


def test_the_preference_center_records_choices_from_the_portal(tenant, portal):
    key = seed_subject(tenant, "user-42")
    start(portal, tenant, sign_portal_token(tenant=tenant, subject="user-42"))
    page = portal.get(base(tenant) + "preferences").content.decode()
    assert "Personalized recommendations" in page
    assert "Privacy notice v1" in page
    response = portal.post(base(tenant) + "preferences",
                           {"purpose": ["personalization"], "level": "full"})
    assert response.status_code == 200
    assert "Your choices are saved." in response.content.decode()
    detail = get_subject_consent(tenant=tenant, subject_key=key)
    states = {d.purpose.key: d for d in detail.purposes}
    assert states["analytics"].granted is False
    assert states["analytics"].source == "portal"
    assert states["personalization"].granted is True


def test_my_data_removes_chosen_interactions_as_a_rectification(tenant, portal, oncommit):
    key = seed_subject(tenant, "user-42", events=3)
    start(portal, tenant, sign_portal_token(tenant=tenant, subject="user-42"))
    first = Event.objects.for_tenant(tenant).filter(subject_key=key).first()
    with oncommit():
        response = portal.post(base(tenant) + "my-data", {"event": [first.event_id]})
    assert response.status_code == 302
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert pr.kind == "rectification"
    assert pr.status == "completed"
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 2


def test_an_emailed_rectification_is_completed_by_the_subjects_corrections(tenant, portal,
                                                                            oncommit):
    key = seed_subject(tenant, "alice@example.com", events=2)
    ask(portal, tenant, oncommit, kind="rectification")
    done = confirm(portal, oncommit, mail.outbox[0])
    pr = PrivacyRequest.objects.for_tenant(tenant).get()
    assert done["Location"] == base(tenant) + f"my-data?request={pr.reference}"
    assert PrivacyRequest.objects.for_tenant(tenant).get().status == "verified"
    with oncommit():
        portal.post(base(tenant) + "preferences",
                    {"purpose": ["personalization", "analytics"], "level": "session",
                     "request": pr.reference})
    pr.refresh_from_db()
    assert pr.status == "completed"
    assert get_subject_consent(tenant=tenant, subject_key=key).chosen_level == "session"


def test_a_download_needs_a_post_and_works_once(tenant, portal, oncommit):
    seed_subject(tenant, "user-42")
    start(portal, tenant, sign_portal_token(tenant=tenant, subject="user-42"))
    with oncommit():
        made = portal.post(base(tenant) + "request", {"kind": "portability", "regime": "gdpr"})
    status = portal.get(made["Location"]).content.decode()
    path = re.search(r'href="(/privacy/[^"]+/download/[^"]+)"', status).group(1)
    assert portal.get(path).status_code == 200  # a confirm page: scanners spend nothing
    response = portal.post(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert portal.post(path).status_code == 410


def test_the_status_page_shows_details_only_to_the_subject(tenant, portal, oncommit):
    seed_subject(tenant, "user-42")
    start(portal, tenant, sign_portal_token(tenant=tenant, subject="user-42"))
    with oncommit():
        made = portal.post(base(tenant) + "request", {"kind": "access", "regime": "gdpr"})
    assert "Download your data" in portal.get(made["Location"]).content.decode()
    from django.test import Client

    stranger = Client().get(made["Location"]).content.decode()
    assert "Completed" in stranger
    assert "Download" not in stranger
    assert portal.get(base(tenant) + "requests/unknown-ref").status_code == 404


def test_signing_out_ends_the_session(tenant, portal):
    start(portal, tenant, sign_portal_token(tenant=tenant, subject="user-42"))
    assert portal.get(base(tenant) + "my-data").status_code == 200
    portal.post(base(tenant) + "signout")
    assert portal.get(base(tenant) + "my-data").status_code == 403
    assert not PortalSession.all_tenants.exists()


def test_an_unverified_subject_key_is_the_tenants_pseudonym(tenant, portal, oncommit):
    ask(portal, tenant, oncommit, identifier="alice@example.com")
    assert (PrivacyRequest.objects.for_tenant(tenant).get().subject_key
            == pseudonymize(tenant, "alice@example.com"))


def _ask_via(tenant, oncommit, *, peer: str, forwarded: str | None, identifier: str):
    from django.test import Client

    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    with oncommit():
        return Client(REMOTE_ADDR=peer).post(
            base(tenant) + "request",
            {"kind": "erasure", "regime": "gdpr", "identifier": identifier}, **headers)


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(tenant, oncommit, settings):
    settings.PRIVACY_PORTAL_RATE_LIMITS = {"ip": (2, 3600), "identifier": (100, 3600)}
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    codes = {client: [_ask_via(tenant, oncommit, peer="10.1.2.3", forwarded=client,
                               identifier=f"{n}@example.com").status_code for n in range(3)]
             for client in ("203.0.113.1", "203.0.113.2")}
    # Before: every request came from the proxy's address, one limit for all clients.
    assert codes == {"203.0.113.1": [302, 302, 429], "203.0.113.2": [302, 302, 429]}
    # The client cannot choose its address: what it wrote left of the proxy's entry is
    # ignored, only the address the proxy saw counts (the spent 203.0.113.1).
    forged = _ask_via(tenant, oncommit, peer="10.1.2.3", forwarded="198.51.100.9, 203.0.113.1",
                      identifier="x@example.com")
    assert forged.status_code == 429


def test_without_trusted_proxies_a_forwarded_header_changes_nothing(tenant, oncommit, settings):
    settings.PRIVACY_PORTAL_RATE_LIMITS = {"ip": (2, 3600), "identifier": (100, 3600)}
    codes = [_ask_via(tenant, oncommit, peer="198.51.100.7", forwarded=f"203.0.113.{n}",
                      identifier=f"{n}@example.com").status_code for n in range(3)]
    assert codes == [302, 302, 429]
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]  # a peer that is no trusted proxy: the same
    assert _ask_via(tenant, oncommit, peer="198.51.100.7", forwarded="203.0.113.77",
                    identifier="y@example.com").status_code == 429
