"""django-csp's middleware with the policy built once per process (issue 18; README
"Security").

django-csp 4 builds the ``Content-Security-Policy`` header from the settings on every
response, twice (the enforced policy and the report-only one, even when that is not
configured): a fifth of the middleware's whole cost on an API request. The settings' policy
is the same for every response that does not amend it, so this subclass builds it once and
reuses the text; a response that amends it (``_csp_update`` and friends: the admin's script
policy, ``apps/console/middleware.py``), a request that used a nonce, or Django's debug
pages go through django-csp's own code unchanged. Every response keeps the header, the API's
JSON included (``tests/core/test_content_security_policy.py``).
"""

from __future__ import annotations

from typing import Any

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

_AMENDMENTS = ("_csp_config", "_csp_update", "_csp_replace",
               "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")
_SETTINGS = ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY", "DEBUG")

#: (enforced, report-only) policy text built from the settings, or None until first used.
_built: tuple[str, str] | None = None


@receiver(setting_changed)
def _forget_policy(*, setting: str, **kwargs: Any) -> None:
    global _built
    if setting in _SETTINGS:
        _built = None


def settings_policies() -> tuple[str, str]:
    """The settings' enforced and report-only policy text, built once."""
    global _built
    if _built is None:
        _built = (build_policy(), build_policy(report_only=True))
    return _built


def _excluded(request: HttpRequest, setting: str) -> bool:
    prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
    return bool(prefixes) and request.path_info.startswith(tuple(prefixes))


class CSPMiddleware(DjangoCSPMiddleware):
    def process_response(self, request: HttpRequest,
                         response: HttpResponseBase) -> HttpResponseBase:
        if (settings.DEBUG or getattr(request, "_csp_nonce", None) is not None
                or any(getattr(response, name, None) is not None for name in _AMENDMENTS)):
            return super().process_response(request, response)
        enforced, report_only = settings_policies()
        # The same conditions as django-csp's: not set already, not exempt, not excluded.
        if (enforced and HEADER not in response
                and getattr(response, "_csp_exempt", False) is False
                and not _excluded(request, "CONTENT_SECURITY_POLICY")):
            response[HEADER] = enforced
        if (report_only and HEADER_REPORT_ONLY not in response
                and getattr(response, "_csp_exempt_ro", False) is False
                and not _excluded(request, "CONTENT_SECURITY_POLICY_REPORT_ONLY")):
            response[HEADER_REPORT_ONLY] = report_only
        # As django-csp does: a nonce asked for after the header is written is an error.
        request.csp_nonce = CheckableLazyObject(  # type: ignore[attr-defined]
            self._csp_nonce_post_response)
        return response
