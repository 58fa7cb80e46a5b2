# The chain head is tenant-owned like every other row of a tenant: reached through
# for_tenant / a tenant scope, never an unscoped query.

import django.db.models.manager
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_tenant_scope_managers'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='auditchainhead',
            options={'default_manager_name': 'all_tenants'},
        ),
        migrations.AlterModelManagers(
            name='auditchainhead',
            managers=[
                ('all_tenants', django.db.models.manager.Manager()),
            ],
        ),
        migrations.AddField(
            model_name='auditchainhead',
            name='created_at',
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='auditchainhead',
            name='updated_at',
            field=models.DateTimeField(auto_now=True),
        ),
    ]
