from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.services import verify_chain
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify the hash chain of audit entries; exit 1 and name the first broken entry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="slug of one tenant (default: every tenant)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.all()
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"No tenant '{options['tenant']}'.")
        broken = 0
        for tenant in tenants:
            report = verify_chain(tenant=tenant)
            if report.intact:
                self.stdout.write(f"{tenant.slug}: intact ({report.checked_entries} entries)")
            else:
                broken += 1
                self.stdout.write(
                    f"{tenant.slug}: BROKEN at entry #{report.first_broken_sequence}: "
                    f"{report.problem}"
                )
        if broken:
            raise CommandError(f"{broken} audit chain(s) broken.")
