from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.tenants.models import Scope, Tenant
from apps.tenants.services import create_api_key


class Command(BaseCommand):
    help = ("Create an API key for a tenant. The key is printed alone on the last line and "
            f"cannot be shown again. Scopes: {', '.join(Scope.values)}.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help="comma-separated, e.g. events:write")
        parser.add_argument("--expires-in-days", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["slug"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{options['slug']}'.")
        expires_at = None
        if options["expires_in_days"] is not None:
            if options["expires_in_days"] <= 0:
                raise CommandError("--expires-in-days must be positive.")
            expires_at = timezone.now() + timedelta(days=options["expires_in_days"])
        try:
            api_key, raw_key = create_api_key(tenant=tenant, name=options["name"],
                                              scopes=options["scopes"].split(","),
                                              expires_at=expires_at)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Key '{api_key.name}' for {tenant.slug} with scopes "
                          f"{', '.join(api_key.scopes)}. Store it now; it is not shown again.")
        self.stdout.write(raw_key)
