"""``manage.py replay_erasures``: after restoring a database or model artifacts, erase again
every subject in the tombstone ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.privacy.services import replay_erasures
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = ("Replay every recorded erasure (tombstone ledger) through every registered "
            "handler. Idempotent; run it after any restore.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="only this tenant (slug)")
        parser.add_argument("--since", help="only erasures at or after this ISO date/time "
                                            "(e.g. the backup's date)")

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
        removed = replay_erasures(tenant=tenant, since=since)
        subjects = removed.pop("subjects", 0)
        self.stdout.write(f"replayed {subjects} erased subject(s)")
        for name, count in sorted(removed.items()):
            self.stdout.write(f"  {name}: {count} row(s) removed")
