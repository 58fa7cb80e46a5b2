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
from django.utils.translation import get_supported_language_variant, gettext_lazy
from django.utils.translation.trans_real import parse_accept_lang_header

from apps.tenants.models import Tenant
from apps.tenants.services import tenant_setting

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
    """The tenant's ``portal_default_language``, English when unset or not a portal
    language."""
    if tenant is None:
        return FALLBACK
    return supported(str(tenant_setting(tenant, DEFAULT_LANGUAGE_SETTING, FALLBACK))) \
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
