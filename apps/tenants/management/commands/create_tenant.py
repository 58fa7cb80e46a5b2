from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.core.exceptions import ApplicationError
from apps.tenants.models import Membership, Tenant
from apps.tenants.services import add_member, create_tenant


class Command(BaseCommand):
    help = "Create a tenant (with its pseudonymization secret) and its owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--password", help="owner's admin password (default: none, "
                            "set it later with changepassword)")
        parser.add_argument("--regime", choices=Tenant.Regime.values, default="gdpr")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with transaction.atomic():
                tenant = create_tenant(slug=options["slug"], name=options["name"],
                                       default_regime=options["regime"],
                                       contact_email=options["owner_email"])
                add_member(tenant=tenant, email=options["owner_email"],
                           role=Membership.Role.OWNER, password=options["password"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created tenant '{tenant.slug}' with owner {options['owner_email']}.")
