from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.heads import heads_path
from apps.audit.management.commands.verify_audit_chain import describe
from apps.audit.services import export_chain_head
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = ("Verify each tenant's audit chain and append its head, signed, to "
            "AUDIT_HEADS_DIR/tenant-<id>.jsonl; exit 1 if a chain is broken (nothing is "
            "exported for it).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="slug of one tenant (default: every active tenant)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.filter(is_active=True)
        if options["tenant"]:
            tenants = Tenant.objects.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"No tenant '{options['tenant']}'.")
        broken = 0
        for tenant in tenants:
            export = export_chain_head(tenant=tenant)
            if not export.report.intact:
                broken += 1
                self.stdout.write(f"{tenant.slug}: {describe(export.report)}; not exported")
            elif export.head is None:
                self.stdout.write(f"{tenant.slug}: no entries; nothing to export")
            else:
                done = "exported" if export.written else "unchanged since the last export"
                self.stdout.write(f"{tenant.slug}: head #{export.head.sequence} {done} "
                                  f"({heads_path(tenant.pk)})")
        if broken:
            raise CommandError(f"{broken} audit chain(s) broken; their heads were not exported.")
