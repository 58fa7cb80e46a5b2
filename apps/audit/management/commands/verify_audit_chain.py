from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.services import ChainReport, verify_chain
from apps.tenants.models import Tenant


def describe(report: ChainReport) -> str:
    """One line about a chain: intact and how far it is anchored, or where it broke."""
    if not report.intact:
        where = f" at entry #{report.first_broken_sequence}" if report.first_broken_sequence else ""
        return f"BROKEN{where}: {report.problem}"
    anchor = report.anchor
    anchored = (f"matches the head exported at {anchor.exported_at} (#{anchor.sequence})"
                if anchor else "no head exported yet")
    return f"intact ({report.checked_entries} entries), {anchored}"


class Command(BaseCommand):
    help = ("Verify each tenant's audit chain (keyed hashes) against its latest exported head; "
            "exit 1 and name the first broken entry.")

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
            broken += not report.intact
            self.stdout.write(f"{tenant.slug}: {describe(report)}")
        if broken:
            raise CommandError(f"{broken} audit chain(s) broken.")
