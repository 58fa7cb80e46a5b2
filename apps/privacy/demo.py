"""Demo data for ``make run``: a small queue of privacy requests for the console, some
overdue and some at risk, and one access request fulfilled at once."""

from __future__ import annotations

from datetime import timedelta
from typing import TextIO

from django.utils import timezone

from apps.privacy.models import PrivacyRequest
from apps.privacy.services import create_privacy_request
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize

#: (subject, kind, days since received, verified by the tenant's backend)
_DEMO_REQUESTS = [
    ("demo-user-0011", "access", 40, False),      # GDPR month passed: overdue
    ("demo-user-0012", "erasure", 27, False),     # due within days: at risk
    ("demo-user-0013", "erasure", 12, False),
    ("demo-user-0014", "portability", 3, False),
    ("demo-user-0015", "restriction", 1, False),
    ("demo-user-0016", "access", 2, True),        # fulfilled at once (an export)
]


def seed_demo_requests(tenant: Tenant, out: TextIO) -> None:
    """Idempotent: does nothing when the tenant has requests already."""
    if PrivacyRequest.objects.for_tenant(tenant).exists():
        out.write("privacy: demo requests already present\n")
        return
    now = timezone.now()
    for subject, kind, age, verified in _DEMO_REQUESTS:
        create_privacy_request(
            tenant=tenant, kind=kind, regime="gdpr", channel=PrivacyRequest.Channel.API,
            subject_key=pseudonymize(tenant, subject),
            received_at=now - timedelta(days=age),
            verification=PrivacyRequest.Verification.TENANT_ATTESTED if verified else None)
    out.write(f"privacy: {len(_DEMO_REQUESTS)} demo requests\n")


#: The demo subject whose portal link ``make run`` prints.
DEMO_PORTAL_SUBJECT = "demo-user-0003"


def portal_banner(tenant: Tenant, base_url: str) -> list[str]:
    """The portal's address, and a link signed as the tenant's backend would sign it that
    opens the portal as a demo subject (valid once, for the longest lifetime allowed)."""
    from django.urls import reverse

    from apps.privacy.services import sign_portal_token
    from apps.privacy.services.verification import SIGNED_LINK_MAX_TTL

    home = f"{base_url}{reverse('privacy-portal:home', args=[tenant.slug])}"
    start = f"{base_url}{reverse('privacy-portal:start', args=[tenant.slug])}"
    token = sign_portal_token(tenant=tenant, subject=DEMO_PORTAL_SUBJECT,
                              ttl=SIGNED_LINK_MAX_TTL)
    minutes = int(SIGNED_LINK_MAX_TTL.total_seconds() // 60)
    return [f"Portal:       {home}",
            f"As {DEMO_PORTAL_SUBJECT} (signed link, once, {minutes} min): "
            f"{start}?token={token}"]
