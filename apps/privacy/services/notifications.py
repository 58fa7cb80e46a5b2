"""Messages to requesters and to tenant staff, and the encrypted contact identifier.

The raw identifier a requester gave (and the email to reach them) exists only as a Fernet
token under the master key on the open request (DESIGN S11). A message is rendered while
the transaction runs and sent after it commits, with the address held only in memory, so a
request can be closed (and its contact wiped) in the same transaction that announces it.
Mail failures are logged without the address and never undo the change they announce.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy

from apps.privacy.i18n import email_language
from apps.privacy.models import PrivacyRequest
from apps.tenants.crypto import decrypt_secret, encrypt_secret
from apps.tenants.models import Membership, Tenant

logger = logging.getLogger("privacy.notifications")


@dataclass(frozen=True)
class Contact:
    identifier: str
    email: str  # "" when the requester gave no email address
    #: The portal language the request was made in (apps.privacy.i18n): messages to the
    #: requester are written in it. "" for the tenant's default.
    language: str = ""


def looks_like_email(value: str) -> bool:
    local, _, domain = value.partition("@")
    return bool(local) and "." in domain and " " not in value and len(value) <= 254


def encrypt_contact(contact: Contact) -> bytes:
    payload = json.dumps({"identifier": contact.identifier, "email": contact.email,
                          "language": contact.language})
    return encrypt_secret(payload.encode())


def decrypt_contact(ciphertext: bytes | memoryview | None) -> Contact | None:
    if not ciphertext or not bytes(ciphertext):
        return None
    data = json.loads(decrypt_secret(bytes(ciphertext)))
    return Contact(identifier=data.get("identifier", ""), email=data.get("email", ""),
                   language=data.get("language", ""))


def request_contact(privacy_request: PrivacyRequest) -> Contact | None:
    return decrypt_contact(privacy_request.contact_ciphertext)


# --- Links -------------------------------------------------------------------------------------


def portal_url(privacy_request: PrivacyRequest, name: str, **kwargs: Any) -> str:
    path = reverse(f"privacy-portal:{name}",
                   kwargs={"slug": privacy_request.tenant.slug, **kwargs})
    return f"{privacy_request.origin}{path}"


def status_url(privacy_request: PrivacyRequest) -> str:
    return portal_url(privacy_request, "status", reference=privacy_request.reference)


def verify_url(privacy_request: PrivacyRequest, token: str) -> str:
    return f"{portal_url(privacy_request, 'verify')}?r={privacy_request.reference}&token={token}"


def download_url(privacy_request: PrivacyRequest, token: str, origin: str | None = None) -> str:
    path = reverse("privacy-portal:download",
                   kwargs={"slug": privacy_request.tenant.slug, "token": token})
    return f"{privacy_request.origin if origin is None else origin}{path}"


# --- Sending -----------------------------------------------------------------------------------

SUBJECTS = {
    "verify": gettext_lazy("Confirm your privacy request to {tenant}"),
    "received": gettext_lazy("{tenant} received your privacy request"),
    "extended": gettext_lazy("{tenant} needs more time for your privacy request"),
    "rejected": gettext_lazy("{tenant} could not fulfil your privacy request"),
    "completed": gettext_lazy("{tenant} completed your privacy request"),
    "download": gettext_lazy("Your data from {tenant} is ready to download"),
    "duplicate": gettext_lazy("Your privacy request to {tenant} is already under way"),
}


def _from_address(tenant: Tenant) -> str:
    address = settings.DEFAULT_FROM_EMAIL
    name = tenant.name.replace('"', "").replace("\n", " ")
    return f'"{name} privacy" <{address}>' if "<" not in address else address


def _deliver(subject: str, body: str, from_email: str, to: list[str], kind: str) -> None:
    try:
        send_mail(subject, body, from_email, to, fail_silently=False)
    except Exception:  # a mail outage must not fail the request it announces
        logger.exception("privacy.email_failed kind=%s", kind)


def notify_subject(privacy_request: PrivacyRequest, message: str,
                   context: dict[str, Any] | None = None) -> bool:
    """Render ``privacy/email/<message>.txt`` for the requester, in the language they made
    the request in (else the tenant's default), and send it after commit. Returns whether
    there is an email address to send to."""
    contact = request_contact(privacy_request)
    if contact is None or not contact.email:
        return False
    tenant = privacy_request.tenant
    with translation.override(email_language(tenant, contact.language)):
        body = render_to_string(f"privacy/email/{message}.txt", {
            "tenant": tenant, "privacy_request": privacy_request,
            "status_url": status_url(privacy_request), **(context or {}),
        })
        subject = str(SUBJECTS[message]).format(tenant=tenant.name)
    sender, to = _from_address(tenant), [contact.email]
    transaction.on_commit(lambda: _deliver(subject, body, sender, to, message))
    return True


def staff_addresses(tenant: Tenant) -> list[str]:
    """Owners' and admins' emails plus the tenant's contact address."""
    emails = set(Membership.objects.for_tenant(tenant)
                 .filter(role__in=list(Membership.WRITE_ROLES), user__is_active=True)
                 .exclude(user__email="").values_list("user__email", flat=True))
    if tenant.contact_email:
        emails.add(tenant.contact_email)
    return sorted(emails)


def notify_staff(tenant: Tenant, subject: str, template: str, context: dict[str, Any]) -> int:
    to = staff_addresses(tenant)
    if not to:
        return 0
    with translation.override("en"):  # staff messages are English, whatever page sent them
        body = render_to_string(template, {"tenant": tenant, **context})
    sender = settings.DEFAULT_FROM_EMAIL
    transaction.on_commit(lambda: _deliver(subject, body, sender, to, "staff"))
    return len(to)
