"""The privacy portal at ``/privacy/<tenant-slug>/``: server-rendered pages for data
subjects, usable without JavaScript, in the tenant's name.

It never tells anyone whether a subject exists: a request names an identifier, and the
answer (a redirect to the same "check your email" page) and the work behind it (a request
row, an email to the address given) are the same for a customer and a stranger. Writes are
rate-limited per IP address and per identifier (HMACs in the cache; no address is stored).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.exceptions import ApplicationError
from apps.core.http import client_address
from apps.privacy import tenant_settings as privacy_settings
from apps.privacy.forms import REGIMES, PortalRequestForm, VerifyForm, portal_kinds
from apps.privacy.i18n import portal_language, supported, switcher_context
from apps.privacy.kinds import RequestKind, find_kind, get_kind
from apps.privacy.models import PortalSession, PrivacyRequest
from apps.privacy.selectors import (
    get_request_by_reference,
    get_subject_data_summary,
    list_subject_requests,
)
from apps.privacy.services import (
    COMPLAINT_RIGHTS,
    Contact,
    close_portal_session,
    correct_subject_data,
    create_privacy_request,
    export_link,
    file_privacy_request,
    find_pending_rectification,
    get_portal_session,
    looks_like_email,
    open_download,
    open_portal_session,
    redeem_signed_token,
    start_email_verification,
    submit_rectification,
    verify_with_token,
)
from apps.privacy.services.notifications import decrypt_contact, notify_subject
from apps.privacy.services.ratelimit import allow
from apps.privacy.services.verification import SESSION_TTL
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize, setting_value

logger = logging.getLogger("privacy.portal")

COOKIE = "discreet_portal"
IDENTIFIER_SETTING = privacy_settings.PORTAL_IDENTIFIER.name  # "email" (default) or "account"
Status = PrivacyRequest.Status


# --- Helpers -------------------------------------------------------------------------------------


def _portal_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A portal page: ``view(request, tenant, **kwargs)`` with the tenant named by the URL's
    slug; an unknown or inactive tenant is a 404 before the view runs."""

    @functools.wraps(view)
    def portal_page(request: HttpRequest, slug: str, **kwargs: Any) -> HttpResponse:
        tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
        with translation.override(portal_language(request, tenant)):
            response = _not_found(request) if tenant is None else view(request, tenant,
                                                                       **kwargs)
            response.setdefault("Content-Language", translation.get_language())
        # The language follows the header and the switcher's cookie (apps.privacy.i18n).
        patch_vary_headers(response, ("Accept-Language", "Cookie"))
        return response

    return portal_page


def _page(request: HttpRequest, tenant: Tenant | None, template: str,
          context: dict[str, Any] | None = None, status: int = 200) -> HttpResponse:
    session = getattr(request, "_portal_session", None)
    response = render(request, f"privacy/portal/{template}", {
        "tenant": tenant, "verified": session is not None,
        **switcher_context(request, tenant), **(context or {})}, status=status)
    response["Cache-Control"] = "no-store"
    # Tokens travel in portal URLs: never to another site. ("no-referrer" would make
    # browsers send "Origin: null" with the forms, which CSRF protection refuses.)
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex"
    return response


def _message(request: HttpRequest, tenant: Tenant | None, title: str, text: str,
             status: int) -> HttpResponse:
    return _page(request, tenant, "message.html", {"title": title, "text": text}, status)


def _not_found(request: HttpRequest) -> HttpResponse:
    return _message(request, None, _("Page not found"),
                    _("There is no privacy portal at this address."), 404)


def _too_many(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    return _message(request, tenant, _("Too many requests"),
                    _("Please wait a while before trying again."), 429)


def _ip(request: HttpRequest) -> str:
    # REMOTE_ADDR, or behind the proxies named in TRUSTED_PROXIES the address they saw; a
    # client-set X-Forwarded-For never counts (apps.core.http). Only an HMAC of it reaches
    # the cache.
    return client_address(request)


def _session(request: HttpRequest, tenant: Tenant) -> PortalSession | None:
    session = get_portal_session(tenant=tenant, raw=request.COOKIES.get(COOKIE))
    request._portal_session = session  # type: ignore[attr-defined]
    return session


def _cookie_path(tenant: Tenant) -> str:
    return reverse("privacy-portal:home", kwargs={"slug": tenant.slug})


def _open_session(request: HttpRequest, response: HttpResponse, tenant: Tenant, *,
                  subject_key: str, method: str, contact: Contact) -> None:
    """Open a verified portal session for the subject and set its cookie on ``response``."""
    raw = open_portal_session(tenant=tenant, subject_key=subject_key, method=method,
                              contact=contact)
    response.set_cookie(COOKIE, raw, max_age=int(SESSION_TTL.total_seconds()),
                        path=_cookie_path(tenant), secure=request.is_secure(), httponly=True,
                        samesite="Lax")


def _session_contact(session: PortalSession) -> Contact | None:
    """The verified visitor's contact, with the language of the page they act on now (the
    messages about what they ask for are written in it)."""
    contact = decrypt_contact(session.contact_ciphertext)
    return None if contact is None else dataclasses.replace(
        contact, language=translation.get_language())


def _origin(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _url(name: str, tenant: Tenant, **kwargs: Any) -> str:
    return reverse(f"privacy-portal:{name}", kwargs={"slug": tenant.slug, **kwargs})


def _kind_labels() -> dict[str, str]:
    return {value: label for value, label, _ in portal_kinds()}


def _policy(pr: PrivacyRequest) -> RequestKind | None:
    return find_kind(pr.kind)


def _next_page(tenant: Tenant, pr: PrivacyRequest) -> str:
    """Where a subject goes once their request is verified: to "my data", with the request,
    when it waits for details they give there (a rectification); else its status page."""
    policy = _policy(pr)
    if policy is not None and policy.carries_details:
        return _url("my_data", tenant) + f"?request={pr.reference}"
    return _url("status", tenant, reference=pr.reference)


def _home_context(tenant: Tenant, form: PortalRequestForm | None,
                  session: PortalSession | None) -> dict[str, Any]:
    return {
        "form": form, "kinds": portal_kinds(), "regimes": REGIMES,
        "selected_kind": (form.data.get("kind") if form is not None and form.is_bound else ""),
        "selected_regime": (form.data.get("regime") if form is not None and form.is_bound
                            else tenant.default_regime),
        "identifier_value": (form.data.get("identifier", "") if form is not None
                             and form.is_bound else ""),
        "account_only": setting_value(tenant, privacy_settings.PORTAL_IDENTIFIER) == "account",
        "session": session,
    }


# --- Making a request ---------------------------------------------------------------------------


@require_GET
@_portal_view
def home(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    session = _session(request, tenant)
    return _page(request, tenant, "home.html", _home_context(tenant, None, session))


@require_POST
@_portal_view
def make_request(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if not allow("ip", _ip(request)):
        return _too_many(request, tenant)
    session = _session(request, tenant)
    form = PortalRequestForm(request.POST, verified=session is not None)
    if not form.is_valid():
        return _page(request, tenant, "home.html", _home_context(tenant, form, session), 400)
    kind, regime = form.cleaned_data["kind"], form.cleaned_data["regime"]
    origin = _origin(request)
    if session is not None:
        # A verified visitor: the request is theirs and verified at once. One they already
        # have open of this kind is shown instead, saying so (no second request or job).
        filing = file_privacy_request(
            tenant=tenant, kind=kind, regime=regime, channel=PrivacyRequest.Channel.PORTAL,
            subject_key=session.subject_key, contact=_session_contact(session),
            verification=PrivacyRequest.Verification.PORTAL_SESSION, actor="subject",
            origin=origin)
        if filing.duplicate:
            return HttpResponseRedirect(
                _url("status", tenant, reference=filing.request.reference) + "?already=1")
        return HttpResponseRedirect(_next_page(tenant, filing.request))
    identifier = form.cleaned_data["identifier"]
    if not allow("identifier", f"{tenant.pk}:{identifier.lower()}"):
        return _too_many(request, tenant)
    is_email = looks_like_email(identifier)
    account_only = setting_value(tenant, privacy_settings.PORTAL_IDENTIFIER) == "account"
    contact = Contact(identifier=identifier, email=identifier if is_email else "",
                      language=translation.get_language())
    if not get_kind(kind).needs_verification:
        create_privacy_request(
            tenant=tenant, kind=kind, regime=regime, channel=PrivacyRequest.Channel.PORTAL,
            subject_key=pseudonymize(tenant, identifier), contact=contact, actor="subject",
            origin=origin)
        what = "applied"
    elif is_email and not account_only:
        with transaction.atomic():
            filing = file_privacy_request(
                tenant=tenant, kind=kind, regime=regime,
                channel=PrivacyRequest.Channel.PORTAL,
                subject_key=pseudonymize(tenant, identifier), contact=contact,
                actor="subject", origin=origin)
            pr = filing.request
            if pr.status in {Status.RECEIVED, Status.VERIFYING}:
                # New, or an open one still unconfirmed: a (fresh) link to confirm it.
                start_email_verification(privacy_request=pr, actor="subject")
            else:
                # Already under way. The page stays the same ("check your email"), so it
                # tells no one whether this address has a request; the email says it.
                notify_subject(pr, "duplicate")
        what = "verify"
    else:
        what = "account"  # nothing to verify an account id with here: use the signed link
    return HttpResponseRedirect(_url("sent", tenant) + f"?what={what}")


@require_GET
@_portal_view
def sent(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    _session(request, tenant)
    what = request.GET.get("what", "verify")
    return _page(request, tenant, "sent.html", {
        "what": what if what in {"verify", "applied", "account"} else "verify"})


# --- Verification ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@_portal_view
def verify(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """GET shows a confirm button (so mail scanners that open links do not spend the
    single-use token); POST checks it."""
    _session(request, tenant)
    if request.method == "GET":
        return _page(request, tenant, "verify.html", {
            "reference": request.GET.get("r", "")[:32],
            "token": request.GET.get("token", "")[:100]})
    if not allow("ip", _ip(request)):
        return _too_many(request, tenant)
    form = VerifyForm(request.POST)
    pr = None
    if form.is_valid():
        pr = verify_with_token(tenant=tenant, reference=form.cleaned_data["r"],
                               token=form.cleaned_data["token"])
    if pr is None:
        return _page(request, tenant, "verify.html", {
            "reference": request.POST.get("r", "")[:32], "token": "",
            "error": _("This code is not valid or has expired. Check the email, or make the "
                       "request again to get a new one.")}, 400)
    response = HttpResponseRedirect(_next_page(tenant, pr))
    policy = _policy(pr)
    if policy is not None and not policy.erases_subject:
        # A session would hold the key of a subject being erased; the receipt needs none.
        _open_session(request, response, tenant, subject_key=pr.subject_key,
                      method=PrivacyRequest.Verification.EMAIL_LINK,
                      contact=decrypt_contact(pr.contact_ciphertext))
    return response


@require_GET
@_portal_view
def start(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Entry from the tenant's site with a link its backend signed for a logged-in user."""
    if not allow("ip", _ip(request)):
        return _too_many(request, tenant)
    try:
        signed = redeem_signed_token(tenant=tenant, token=request.GET.get("token", ""))
    except ApplicationError:
        request._portal_session = None  # type: ignore[attr-defined]
        return _message(request, tenant, _("Link not valid"),
                        _("This link is not valid or has expired."), 400)
    subject_key = pseudonymize(tenant, signed.subject)
    contact = Contact(identifier=signed.subject,
                      email=signed.email if looks_like_email(signed.email) else "",
                      language=translation.get_language())
    response = HttpResponseRedirect(_url("home", tenant))
    _open_session(request, response, tenant, subject_key=subject_key,
                  method=PrivacyRequest.Verification.SIGNED_LINK, contact=contact)
    return response


@require_POST
@_portal_view
def signout(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    close_portal_session(tenant=tenant, raw=request.COOKIES.get(COOKIE))
    response = HttpResponseRedirect(_url("home", tenant))
    response.delete_cookie(COOKIE, path=_cookie_path(tenant))
    return response


# --- Status and download --------------------------------------------------------------------------


@require_GET
@_portal_view
def status(request: HttpRequest, tenant: Tenant, reference: str) -> HttpResponse:
    session = _session(request, tenant)
    pr = get_request_by_reference(tenant=tenant, reference=reference)
    if pr is None:
        return _message(request, tenant, _("Request not found"),
                        _("There is no request at this address."), 404)
    owner = session is not None and session.subject_key == pr.subject_key
    policy = _policy(pr)
    context: dict[str, Any] = {
        "pr": pr, "owner": owner, "kind_label": _kind_labels().get(pr.kind, pr.kind),
        "complaint": COMPLAINT_RIGHTS.get(pr.regime, ""),
        "already": owner and pr.is_open and request.GET.get("already") == "1",
    }
    if pr.status == Status.COMPLETED and (owner or (policy is not None
                                                    and policy.erases_subject)):
        # An erasure receipt holds counts only, about a pseudonym that no longer points at
        # anyone: the reference (sent to the requester alone) is enough to see it.
        context["receipt"] = pr.result.get("receipt")
    if owner and pr.status == Status.COMPLETED:
        context["applied"] = pr.result.get("applied") or pr.result.get("rectification")
        if policy is not None and policy.produces_export:
            link = export_link(privacy_request=pr, origin="")
            context["download"] = link
    return _page(request, tenant, "status.html", context)


@require_http_methods(["GET", "POST"])
@_portal_view
def download(request: HttpRequest, tenant: Tenant, token: str) -> HttpResponse:
    _session(request, tenant)
    if request.method == "GET":
        return _page(request, tenant, "download.html", {"token": token})
    if not allow("ip", _ip(request)):
        return _too_many(request, tenant)
    opened = open_download(tenant=tenant, token=token)
    if opened is None:
        return _message(request, tenant, _("Link not valid"),
                        _("This download link was already used or has expired. Ask for a new "
                          "copy if you need one."), 410)
    export, handle = opened
    response = FileResponse(handle, as_attachment=True,
                            filename=export.path.rsplit("/", 1)[-1],
                            content_type="application/zip")
    response["Cache-Control"] = "no-store"
    return response


# --- Verified subjects: preference center and "my data" ------------------------------------------


def _verified_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A portal page for a verified visitor: ``view(request, tenant, session, pending)``,
    ``pending`` being the rectification request the visit completes (``?request=``), if
    any. A visitor who has not confirmed who they are gets a 403 page instead."""

    @_portal_view
    @functools.wraps(view)
    def verified_page(request: HttpRequest, tenant: Tenant) -> HttpResponse:
        session = _session(request, tenant)
        if session is None:
            return _message(request, tenant, _("Please confirm who you are"),
                            _("To see or change your data, make a request below or follow "
                              "the privacy link in your account; we will confirm it is you "
                              "first."), 403)
        reference = request.GET.get("request") or request.POST.get("request") or ""
        pending = find_pending_rectification(tenant=tenant, subject_key=session.subject_key,
                                             reference=reference)
        return view(request, tenant, session, pending)

    return verified_page


#: The personalization levels as the preference center describes them ((value, label,
#: hint)). Each says what happens when it is chosen; ``tests/modeling/test_subject_controls.py``
#: holds the behaviour (the modeling app's personalization-stop listener) to these words.
FORGOTTEN = gettext_lazy(
    "Your stored interactions are deleted and the recommendation models forget you at once. "
    "Only this choice is kept, as proof of it, and, until the models are retrained, which of "
    "them had learnt from you. While a restriction you asked for holds, your interactions "
    "are kept, frozen and unused, instead.")
LEVEL_CHOICES: list[tuple[str, Any, Any]] = [
    ("full", gettext_lazy("Full: use my history to personalize"),
     gettext_lazy("Your interactions on this site are kept to recommend items you may like.")),
    ("session", gettext_lazy("Session only: my interactions are not stored"),
     format_lazy("{} {}", gettext_lazy("Recommendations come only from what you look at now."),
                 FORGOTTEN)),
    ("off", gettext_lazy("Off: no personalization"), FORGOTTEN),
]


@require_http_methods(["GET", "POST"])
@_verified_page
def preferences(request: HttpRequest, tenant: Tenant, session: PortalSession,
                pending: PrivacyRequest | None) -> HttpResponse:
    from apps.consent.selectors import get_current_notices, get_subject_consent
    from apps.consent.services import record_consents

    detail = get_subject_consent(tenant=tenant, subject_key=session.subject_key)
    error, saved = "", False
    if request.method == "POST":
        checked = set(request.POST.getlist("purpose"))
        decisions = {d.purpose.key: d.purpose.key in checked for d in detail.purposes
                     if (d.purpose.key in checked) != d.granted}
        level = request.POST.get("level") or None
        if level == (detail.chosen_level or detail.view.level):
            level = None
        try:
            if pending is not None:
                submit_rectification(privacy_request=pending,
                                     changes={"consents": decisions, "level": level})
            elif decisions or level is not None:
                record_consents(tenant=tenant, subject_key=session.subject_key,
                                decisions=decisions, level=level, source="portal",
                                method="preference-center", actor="subject")
            saved = True
        except ApplicationError as exc:
            error = exc.message
        detail = get_subject_consent(tenant=tenant, subject_key=session.subject_key)
    notices = get_current_notices(tenant=tenant)
    rows = [{"detail": d, "notice": notices.get(d.purpose.pk)} for d in detail.purposes]
    return _page(request, tenant, "preferences.html", {
        "rows": rows, "detail": detail, "error": error, "saved": saved,
        "levels": LEVEL_CHOICES,
        "current_level": detail.chosen_level or detail.view.level,
        "pending": pending, "session": session,
    }, 400 if error else 200)


@require_http_methods(["GET", "POST"])
@_verified_page
def my_data(request: HttpRequest, tenant: Tenant, session: PortalSession,
            pending: PrivacyRequest | None) -> HttpResponse:
    from apps.events.selectors import list_subject_events

    if request.method == "POST":
        chosen = [e for e in request.POST.getlist("event") if e][:1000]
        if not chosen:
            error = _("Choose at least one interaction to remove.")
        else:
            try:
                pr = correct_subject_data(
                    tenant=tenant, subject_key=session.subject_key,
                    changes={"delete_events": chosen}, pending=pending,
                    contact=_session_contact(session), origin=_origin(request))
            except ApplicationError as exc:
                # E.g. a correction of theirs already waits for approval (request_open).
                error = exc.message
            else:
                return HttpResponseRedirect(_url("status", tenant, reference=pr.reference))
    else:
        error = ""
    events = list(list_subject_events(tenant=tenant, subject_key=session.subject_key)
                  .select_related("item")[:50])
    return _page(request, tenant, "my_data.html", {
        "summary": get_subject_data_summary(tenant=tenant, subject_key=session.subject_key),
        "events": events,
        "requests": list_subject_requests(tenant=tenant, subject_key=session.subject_key)[:20],
        "kind_labels": _kind_labels(), "pending": pending, "error": error,
        "preferences_query": f"?request={pending.reference}" if pending else "",
        "now": timezone.now(),
    }, 400 if error else 200)


# --- Language ------------------------------------------------------------------------------------


@require_GET
@_portal_view
def choose_language(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """The switcher: a plain GET form (no JavaScript, and no CSRF token, so a page stays the
    same for every visitor). It keeps the choice in Django's language cookie, read by
    :func:`apps.privacy.i18n.portal_language`, and goes back to the portal page it was on."""
    home = _cookie_path(tenant)
    nxt = request.GET.get("next", "")
    if not nxt.startswith(home) or not url_has_allowed_host_and_scheme(
            nxt, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        nxt = home
    response = HttpResponseRedirect(nxt)
    language = supported(request.GET.get("language"))
    if language is not None:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME, language, max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH, domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=request.is_secure(), httponly=True,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE)
    return response


# --- Verified subjects: "why am I seeing this" ---------------------------------------------------

#: Why no personalized recommendation is shown (``Recommendation.reason``), in plain words.
NOT_PERSONALIZED = {
    "no_model": gettext_lazy("There are no personalized recommendations yet: no recommendation "
                             "model is in service."),
    "restricted": gettext_lazy("You asked us to restrict the use of your data, so nothing is "
                               "recommended to you from your history."),
    "objected": gettext_lazy("You objected to personalization, so nothing is recommended to "
                             "you from your history."),
    "level_off": gettext_lazy("Your choices turn personalization off, so nothing is "
                              "recommended to you from your history."),
    "level_session": gettext_lazy("Your choices keep no history, so recommendations come only "
                                  "from what you look at during a visit."),
    "no_consent": gettext_lazy("You have not agreed to personalization, so nothing is "
                               "recommended to you from your history."),
    "unknown_subject": gettext_lazy("The recommendation model in service does not use your "
                                    "history now: it holds none of your interactions, or they "
                                    "were removed from it. It learns again from what remains "
                                    "when it is next trained."),
}
WHY_RECOMMENDATIONS = 10
WHY_EVENTS_PER_ITEM = 20


def _why_context(tenant: Tenant, subject_key: str) -> dict[str, Any]:
    """The subject's current recommendations, each with the past interactions of theirs that
    led to it (serving's explanations, ``because``), for the page."""
    from apps.events.selectors import list_items, list_subject_events
    from apps.modeling.services import recommend_for_subject

    rec = recommend_for_subject(tenant=tenant, subject_key=subject_key,
                                n=WHY_RECOMMENDATIONS, explain=True)
    if not rec.personalized:
        return {"personalized": False,
                "reason": NOT_PERSONALIZED.get(rec.reason or "", NOT_PERSONALIZED["no_model"])}
    cited = {b["item"] for item in rec.items for b in item.get("because", [])}
    titles = dict(list_items(tenant=tenant).filter(
        external_id__in=cited | {item["item"] for item in rec.items})
        .values_list("external_id", "title"))
    events: dict[str, list[Any]] = {}
    for event in (list_subject_events(tenant=tenant, subject_key=subject_key)
                  .filter(item__external_id__in=cited).select_related("item")
                  .order_by("-occurred_at")):
        found = events.setdefault(event.item.external_id, [])
        if len(found) < WHY_EVENTS_PER_ITEM:
            found.append(event)
    recommendations = []
    for n, item in enumerate(rec.items, start=1):
        sources = [{"item": b["item"], "title": titles.get(b["item"]) or b["item"],
                    "id": f"r{n}-s{m}", "events": [
                        {"event": e, "id": f"r{n}-s{m}-e{k}"}
                        for k, e in enumerate(events.get(b["item"], []), start=1)]}
                   for m, b in enumerate(item.get("because", []), start=1)]
        recommendations.append({"item": item["item"], "id": f"r{n}",
                                "title": titles.get(item["item"]) or item["item"],
                                "sources": sources})
    return {"personalized": True, "recommendations": recommendations}


def _chosen_events(tenant: Tenant, subject_key: str, data: Any) -> list[str]:
    """The subject's own event ids named by the form: one ``event``, or every interaction
    with one ``item``. Anything else (another subject's, gone) names none."""
    from apps.events.selectors import list_subject_events

    events = list_subject_events(tenant=tenant, subject_key=subject_key)
    event_id, item = data.get("event", "")[:128], data.get("item", "")[:512]
    if event_id:
        events = events.filter(event_id=event_id)
    elif item:
        events = events.filter(item__external_id=item)
    else:
        return []
    return list(events.values_list("event_id", flat=True)[:1000])


@require_http_methods(["GET", "POST"])
@_verified_page
def why(request: HttpRequest, tenant: Tenant, session: PortalSession,
        pending: PrivacyRequest | None) -> HttpResponse:
    """"Why am I seeing this": the recommendations with the interactions behind them; a
    POST removes one interaction (``event``) or one item (``item``) from the profile as a
    rectification, which takes the subject out of the models at once (modeling's
    ``rectify_subject``), so the next recommendation cannot cite it."""
    error, removed = "", None
    if request.method == "POST":
        chosen = _chosen_events(tenant, session.subject_key, request.POST)
        if chosen:
            pr = correct_subject_data(
                tenant=tenant, subject_key=session.subject_key,
                changes={"delete_events": chosen}, pending=pending,
                contact=_session_contact(session), origin=_origin(request))
            return HttpResponseRedirect(_url("why", tenant) + f"?removed={pr.reference}")
        error = _("This interaction is no longer in your history.")
    elif request.GET.get("removed"):
        pr = get_request_by_reference(tenant=tenant, reference=request.GET["removed"][:32])
        if pr is not None and pr.subject_key == session.subject_key:
            removed = pr
    return _page(request, tenant, "why.html", {
        **_why_context(tenant, session.subject_key), "error": error, "removed": removed,
        "pending": pending,
    }, 400 if error else 200)
