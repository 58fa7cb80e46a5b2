"""Give existing tenants the policy of the category added with it, ``webhook_deliveries``
(new tenants get it from the tenant provisioner). The default is frozen here, as a migration
must be."""

from django.db import migrations

DEFAULTS = {
    "webhook_deliveries": 30,
}


def provision(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    RetentionPolicy = apps.get_model("retention", "RetentionPolicy")
    RetentionPolicy._default_manager.bulk_create(
        [RetentionPolicy(tenant_id=tenant_id, category=category, days=days)
         for tenant_id in Tenant._default_manager.values_list("pk", flat=True)
         for category, days in DEFAULTS.items()],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):

    dependencies = [
        ("retention", "0004_durable_job_worker"),
        ("tenants", "0001_initial"),
    ]

    operations = [migrations.RunPython(provision, migrations.RunPython.noop)]
