"""Give tenants created before the retention app their default policies (new tenants get
them from the tenant provisioner). The defaults are frozen here, as a migration must be."""

from django.db import migrations

DEFAULTS = {
    "events": 365,
    "inactive_subjects": None,
    "consent_ledger": 1826,
    "exports": 7,
    "closed_privacy_requests": 731,
    "erasure_tombstones": 1096,
    "model_artifacts": None,
    "audit_entries": 1096,
}


def provision(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    RetentionPolicy = apps.get_model("retention", "RetentionPolicy")
    RetentionPolicy.objects.bulk_create(
        [RetentionPolicy(tenant_id=tenant_id, category=category, days=days)
         for tenant_id in Tenant.objects.values_list("pk", flat=True)
         for category, days in DEFAULTS.items()],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):

    dependencies = [
        ("retention", "0001_initial"),
        ("tenants", "0001_initial"),
    ]

    operations = [migrations.RunPython(provision, migrations.RunPython.noop)]
