from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.retention.selectors import preview_retention
from apps.retention.services import enforce_retention_now
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = ("Enforce the retention policies now, in this process, and print `category: N` "
            "for what was deleted (or, with --dry-run, would be). Resumes an unfinished run.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="slug of one tenant (default: every tenant)")
        parser.add_argument("--dry-run", action="store_true",
                            help="change nothing; print what a run started now would delete")

    def handle(self, *args: Any, **options: Any) -> None:
        # An ops command: it crosses tenants on purpose (retention applies to all of them).
        tenants = Tenant.objects.order_by("slug")
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"No tenant '{options['tenant']}'.")
        for tenant in tenants:
            if not options["tenant"]:
                self.stdout.write(f"[{tenant.slug}]")
            if options["dry_run"]:
                counts = preview_retention(tenant=tenant)
            else:
                counts = enforce_retention_now(tenant=tenant)
            for category, count in counts.items():
                self.stdout.write(f"{category}: {count}")
        if options["dry_run"]:
            self.stderr.write("dry run: nothing was deleted")
