"""``manage.py privacy_signing_secret <slug> [--rotate]``: the secret a tenant's backend
signs portal links with (``/privacy/<slug>/start?token=...``)."""

from __future__ import annotations

import base64
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.privacy.services import get_signing_secret, rotate_signing_secret
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = ("Print the tenant's portal link-signing secret (base64url), creating it if "
            "needed; --rotate replaces it (links signed with the old one stop working).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--rotate", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["slug"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{options['slug']}'.")
        secret = (rotate_signing_secret(tenant=tenant) if options["rotate"]
                  else get_signing_secret(tenant=tenant))
        self.stderr.write("Keep this secret on the tenant's backend only. Raw HMAC key = "
                          "base64url-decoded value.")
        self.stdout.write(base64.urlsafe_b64encode(secret).decode().rstrip("="))
