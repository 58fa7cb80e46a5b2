from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from apps.tenants.demo import demo_banner_lines, run_demo_seeders
from apps.tenants.models import ApiKey, Membership, Scope, Tenant
from apps.tenants.services import (
    add_member,
    create_api_key,
    create_tenant,
    provision_tenant,
    revoke_api_key,
)

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.example"
DEMO_PASSWORD = "discreet-demo"  # noqa: S105 - the embedded demo's documented login
DEMO_KEY_NAME = "demo"


class Command(BaseCommand):
    help = ("Create (or refresh) the demo tenant with its owner login, demo data and a fresh "
            "demo API key, printed on the last line.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
            if tenant is None:
                tenant = create_tenant(slug=DEMO_SLUG, name="Demo Books & Goods",
                                       contact_email=DEMO_EMAIL)
            else:
                provision_tenant(tenant)
            add_member(tenant=tenant, email=DEMO_EMAIL, role=Membership.Role.OWNER,
                       password=DEMO_PASSWORD)
            run_demo_seeders(tenant, self.stderr)
            # The old demo key cannot be shown again, so each start issues a new one.
            for old in ApiKey.objects.for_tenant(tenant).filter(name=DEMO_KEY_NAME,
                                                                revoked_at__isnull=True):
                revoke_api_key(api_key=old)
            _, raw_key = create_api_key(tenant=tenant, name=DEMO_KEY_NAME,
                                        scopes=list(Scope.values))
        base = options["base_url"].rstrip("/")
        banner = demo_banner_lines(tenant, base)
        self.stdout.write(f"Admin:        {base}/admin/")
        self.stdout.write(f"Demo login:   {DEMO_EMAIL} / {DEMO_PASSWORD}")
        self.stdout.write(f"API docs:     {base}/api/docs/")
        for line in banner:
            self.stdout.write(line)
        self.stdout.write(f"Try:          curl -H 'Authorization: Bearer {raw_key}' {base}/api/v1/")
        self.stdout.write(raw_key)
