"""``manage.py replay_erasures``: after restoring a database or model artifacts, erase again
every subject erased since, from the tombstone store outside the database (the restore
runbook in the README)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.privacy.services import check_subject, replay_erasures
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = ("Replay every recorded erasure through every declared store (tables and model "
            "artifacts) and re-create the tombstone rows a restore lost. Reads the "
            "tombstone store (TOMBSTONE_DIR) unless --from-database. Idempotent; run it "
            "after any restore.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="only this tenant (slug)")
        parser.add_argument("--since", help="only erasures at or after this ISO date/time "
                                            "(e.g. the backup's date)")
        parser.add_argument("--from-database", action="store_true",
                            help="read the tombstone rows in the database instead of the "
                                 "store (and write any the store lacks into it)")
        parser.add_argument("--verify", action="store_true",
                            help="then search everywhere for each replayed subject; exits 1 "
                                 "on any hit")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = None
        if options.get("tenant"):
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant '{options['tenant']}'.")
        since = None
        if options.get("since"):
            try:
                since = datetime.fromisoformat(options["since"])
            except ValueError as exc:
                raise CommandError("--since takes an ISO date, e.g. 2025-01-31") from exc
            if timezone.is_naive(since):
                since = timezone.make_aware(since, UTC)
        source = "database" if options["from_database"] else "store"
        report = replay_erasures(tenant=tenant, since=since, source=source)
        where = ("the database's tombstone rows" if source == "database"
                 else f"the tombstone store ({settings.TOMBSTONE_DIR})")
        self.stdout.write(f"read {where}")
        self.stdout.write(f"replayed {report.subjects} erased subject(s)")
        for name, count in sorted(report.removed.items()):
            self.stdout.write(f"  {name}: {count} row(s) removed")
        if source == "store":
            self.stdout.write(f"re-created {report.tombstones_restored} tombstone row(s)")
        else:
            self.stdout.write(f"wrote {report.tombstones_stored} missing record(s) to the "
                              "tombstone store")
        if report.unmatched:
            self.stdout.write(self.style.WARNING(
                f"{report.unmatched} record(s) name a tenant this database does not hold "
                "(id, slug and creation time): left alone"))
        if report.expired:
            self.stdout.write(f"{report.expired} record(s) past the tenant's tombstone "
                              "retention period: skipped")
        if options["verify"]:
            hits = 0
            for owner, subject_key in report.erased:
                hits += len(check_subject(tenant=owner, subject_key=subject_key).hits)
            if hits:
                raise CommandError(f"the erased subjects were found in {hits} place(s)",
                                   returncode=1)
            self.stdout.write(self.style.SUCCESS("0 hits: no replayed subject is left"))
