"""The languages of the privacy portal and of the emails to subjects (issue 19, item 4).

One place for the choice of language: the portal's pages and the messages to a requester
call :func:`portal_language` / :func:`email_language`; the tenant's default is read only
by :func:`tenant_default_language` (tenant setting ``portal_default_language``).

The portal activates its language itself (``apps.privacy.portal``) rather than through
``LocaleMiddleware``, so that the API's hot routes pay nothing for it. The order:

1. the visitor's own choice from the switcher (Django's language cookie, set by
   the portal's ``language`` route, a GET form that needs no JavaScript);
2. the first language of ``Accept-Language`` the portal has (``de-AT`` counts as ``de``);
3. the tenant's default language;
4. English.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import get_supported_language_variant, gettext, gettext_lazy
from django.utils.translation.trans_real import parse_accept_lang_header

from apps.core.tenant_settings import get_setting
from apps.tenants.models import Tenant
from apps.tenants.services import setting_value

#: The languages the portal and the emails exist in, each named in itself (the switcher).
PORTAL_LANGUAGES: list[tuple[str, str]] = [
    ("en", "English"), ("de", "Deutsch"), ("fr", "Français"), ("es", "Español"),
]
CODES = frozenset(code for code, _ in PORTAL_LANGUAGES)
FALLBACK = "en"
#: The tenant setting that holds the tenant's default language (one of :data:`CODES`).
DEFAULT_LANGUAGE_SETTING = "portal_default_language"


def supported(code: str | None) -> str | None:
    """``code`` as one of the portal's languages (``de-CH`` → ``de``), or ``None``."""
    if not code:
        return None
    try:
        variant = get_supported_language_variant(code.strip().lower())
    except LookupError:
        return None
    variant = variant.split("-")[0]
    return variant if variant in CODES else None


def tenant_default_language(tenant: Tenant | None) -> str:
    """The tenant's ``portal_default_language`` (its declaration in
    ``apps/privacy/tenant_settings.py``: the stored value when valid, else English)."""
    if tenant is None:
        return FALLBACK
    return supported(str(setting_value(tenant, get_setting(DEFAULT_LANGUAGE_SETTING)))) \
        or FALLBACK


def accepted_language(header: str) -> str | None:
    """The first of the portal's languages in an ``Accept-Language`` header."""
    for code, _quality in parse_accept_lang_header(header[:500]):
        if code == "*":
            continue
        found = supported(code)
        if found:
            return found
    return None


def portal_language(request: HttpRequest, tenant: Tenant | None) -> str:
    """The language of a portal page for this request (the order in the module doc)."""
    chosen = supported(request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME))
    return (chosen or accepted_language(request.headers.get("Accept-Language", ""))
            or tenant_default_language(tenant))


def switcher_context(request: HttpRequest, tenant: Tenant | None) -> dict[str, Any]:
    """What the page frame's language switcher needs (``privacy/portal/base.html``, shared by
    the portal and the transparency page): the languages, and the page to come back to (this
    one for a GET, else the portal's start: a form's answer cannot be reloaded)."""
    if tenant is None:
        return {"languages": PORTAL_LANGUAGES, "language_next": ""}
    home = reverse("privacy-portal:home", kwargs={"slug": tenant.slug})
    return {"languages": PORTAL_LANGUAGES,
            "language_next": request.get_full_path() if request.method == "GET" else home}


def email_language(tenant: Tenant, chosen: str = "") -> str:
    """The language of a message to a requester: the one the request was made in (kept
    with its encrypted contact), else the tenant's default."""
    return supported(chosen) or tenant_default_language(tenant)


#: What the subject reads for a request's kind and status (the model's labels are the
#: admin's, in English). A kind or status missing here shows the model's label.
KIND_NAMES = {
    "access": gettext_lazy("Access to your data"),
    "portability": gettext_lazy("Data portability"),
    "erasure": gettext_lazy("Erasure"),
    "rectification": gettext_lazy("Correction"),
    "restriction": gettext_lazy("Restriction of use"),
    "objection": gettext_lazy("Objection to personalization"),
    "opt_out": gettext_lazy("Opt-out of sale or sharing"),
    "limit_sensitive": gettext_lazy("Limit on the use of sensitive information"),
}
STATUS_NAMES = {
    "received": gettext_lazy("Received"),
    "verifying": gettext_lazy("Verifying identity"),
    "verified": gettext_lazy("Verified"),
    "awaiting_approval": gettext_lazy("Awaiting approval"),
    "in_progress": gettext_lazy("In progress"),
    "completed": gettext_lazy("Completed"),
    "rejected": gettext_lazy("Rejected"),
}

LEGAL_BASIS_NAMES = {
    "consent": gettext_lazy("Consent (GDPR Art. 6(1)(a))"),
    "legitimate_interest": gettext_lazy("Legitimate interest (Art. 6(1)(f))"),
    "contract": gettext_lazy("Contract (Art. 6(1)(b))"),
    "legal_obligation": gettext_lazy("Legal obligation (Art. 6(1)(c))"),
}


def legal_basis_name(purpose: Any) -> str:
    return str(LEGAL_BASIS_NAMES.get(purpose.legal_basis) or purpose.get_legal_basis_display())


def kind_name(privacy_request: Any) -> str:
    return str(KIND_NAMES.get(privacy_request.kind) or privacy_request.get_kind_display())


def status_name(privacy_request: Any) -> str:
    return str(STATUS_NAMES.get(privacy_request.status) or privacy_request.get_status_display())


#: What a completed request changed (``result["applied"]`` or ``["rectification"]``: the
#: keys the flag services and the stores' ``rectify`` return), as the subject reads it. A
#: key missing here is shown as written, marked English (``applied_changes``).
APPLIED_NAMES = {
    "restricted": gettext_lazy("Use of your data restricted"),
    "objected": gettext_lazy("Objection to personalization recorded"),
    "withdrawn_purposes": gettext_lazy("Consents withdrawn"),
    "consents_changed": gettext_lazy("Choices changed"),
    "level": gettext_lazy("Personalization level"),
    "events_deleted": gettext_lazy("Interactions deleted"),
    "model_versions_patched": gettext_lazy("Recommendation models updated at once"),
}
#: The personalization levels' short names (``apps.consent`` ``Level``), for a changed level.
LEVEL_NAMES = {
    "full": gettext_lazy("Full"),
    "session": gettext_lazy("Session only"),
    "off": gettext_lazy("Off"),
}


def _applied_value(key: str, value: Any) -> str:
    if value is True:
        return gettext("yes")
    if value is False:
        return gettext("no")
    if key == "level" and value in LEVEL_NAMES:
        return str(LEVEL_NAMES[value])
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "—"
    return str(value)


def applied_changes(applied: Any) -> list[dict[str, str]]:
    """``applied`` as ``{"name", "value", "lang"}`` rows in the active language; ``lang`` is
    ``"en"`` for a key without a translated name (shown as written), else empty."""
    if not isinstance(applied, dict):
        return []
    rows = []
    for key, value in applied.items():
        name = APPLIED_NAMES.get(key)
        rows.append({"name": str(name) if name else key.replace("_", " ").capitalize(),
                     "value": _applied_value(key, value), "lang": "" if name else "en"})
    return rows
