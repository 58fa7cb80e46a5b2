from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from apps.tenants.crypto import reencrypt_secret
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = ("Re-encrypt every tenant's pseudonymization secret under DISCREET_MASTER_KEY. "
            "Set the old key in DISCREET_MASTER_KEY_PREVIOUS while this runs; remove it after. "
            "Subject keys do not change.")

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            # Operator command: every tenant's secret, on purpose.
            for tenant in Tenant.objects.select_for_update().order_by("pk"):
                tenant.secret_ciphertext = reencrypt_secret(tenant.secret_ciphertext)
                tenant.save(update_fields=["secret_ciphertext", "updated_at"])
                count += 1
        self.stdout.write(f"Re-encrypted {count} tenant secret(s) under the current master key.")
