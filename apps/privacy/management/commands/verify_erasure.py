"""``manage.py verify_erasure <request id>``: search everywhere for an erased subject."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.privacy.models import PrivacyRequest
from apps.privacy.services import verify_erasure


class Command(BaseCommand):
    help = ("Search every table, the Celery result backend, caches, export files and model "
            "artifacts for the subject of an erasure request; record the result on the "
            "request. Exits 1 when anything is found.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("request_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        # An operator's command: it may name any tenant's request (all_tenants on purpose).
        pr = (PrivacyRequest.all_tenants.select_related("tenant")
              .filter(pk=options["request_id"]).first())
        if pr is None:
            raise CommandError(f"No privacy request {options['request_id']}.")
        if pr.kind != PrivacyRequest.Kind.ERASURE:
            raise CommandError(f"Request {pr.pk} is a {pr.kind} request, not an erasure.")
        check = verify_erasure(privacy_request=pr)
        self.stdout.write(f"request {pr.pk} ({pr.tenant.slug}): searched "
                          f"{', '.join(check.places)}")
        if check.hits:
            for hit in check.hits:
                self.stdout.write(f"  FOUND in {hit}")
            raise CommandError(f"the subject was found in {len(check.hits)} place(s)",
                               returncode=1)
        self.stdout.write(self.style.SUCCESS("0 hits: nothing of the subject is left"))
