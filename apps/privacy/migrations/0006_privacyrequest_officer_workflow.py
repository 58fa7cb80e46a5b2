"""Officer workflow (issue 17): approval gate status, assignee, manual steps, notes, and
one open request per subject and kind.

Before the unique constraint is added, open duplicates already stored are closed: per
(tenant, subject, kind) the furthest along (then the oldest) stays open, the others become
``rejected`` with a reason naming the one kept. Their jobs find a closed request and finish
without work. No message goes to the subject (they still get the answer of the one kept).
"""

import django.db.models.deletion
import django.db.models.manager
from django.conf import settings
from django.db import migrations, models
from django.db.models import Count

OPEN = ["received", "verifying", "verified", "in_progress"]
RANK = {"in_progress": 0, "verified": 1, "verifying": 2, "received": 3}


def close_open_duplicates(apps, schema_editor):
    from django.utils import timezone

    request_model = apps.get_model("privacy", "PrivacyRequest")
    rows = request_model.all_tenants if hasattr(request_model, "all_tenants") else (
        request_model._default_manager)
    groups = (rows.filter(status__in=OPEN).values("tenant_id", "subject_key", "kind")
              .annotate(n=Count("pk")).filter(n__gt=1).order_by())
    now = timezone.now()
    for group in groups:
        duplicates = sorted(
            rows.filter(status__in=OPEN, tenant_id=group["tenant_id"],
                        subject_key=group["subject_key"], kind=group["kind"]),
            key=lambda pr: (RANK[pr.status], pr.received_at, pr.pk))
        kept = duplicates[0]
        for pr in duplicates[1:]:
            pr.status = "rejected"
            pr.rejection_reason = f"Duplicate of request {kept.reference[:8]} (kept open)."
            pr.rejected_at = pr.closed_at = now
            pr.payload = {}
            pr.contact_ciphertext = b""
            pr.contact_wiped_at = now
            pr.save(update_fields=["status", "rejection_reason", "rejected_at", "closed_at",
                                   "payload", "contact_ciphertext", "contact_wiped_at"])


class Migration(migrations.Migration):

    dependencies = [
        ('privacy', '0005_durable_job_worker'),
        ('tenants', '0003_tenant_scope_managers'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ManualStep',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('label', models.CharField(max_length=200)),
                ('position', models.PositiveSmallIntegerField(default=0)),
                ('done_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['position', 'pk'],
            },
            managers=[
                ('all_tenants', django.db.models.manager.Manager()),
            ],
        ),
        migrations.CreateModel(
            name='RequestNote',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('text', models.TextField(max_length=4000)),
            ],
            options={
                'ordering': ['created_at', 'pk'],
            },
            managers=[
                ('all_tenants', django.db.models.manager.Manager()),
            ],
        ),
        migrations.RemoveConstraint(
            model_name='privacyrequest',
            name='privacyrequest_status_valid',
        ),
        migrations.AddField(
            model_name='privacyrequest',
            name='approved_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='privacyrequest',
            name='approved_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='privacyrequest',
            name='assignee',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='privacyrequest',
            name='status',
            field=models.CharField(choices=[('received', 'Received'), ('verifying', 'Verifying identity'), ('verified', 'Verified'), ('awaiting_approval', 'Awaiting approval'), ('in_progress', 'In progress'), ('completed', 'Completed'), ('rejected', 'Rejected')], default='received', max_length=20),
        ),
        migrations.AddConstraint(
            model_name='privacyrequest',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['received', 'verifying', 'verified', 'awaiting_approval', 'in_progress', 'completed', 'rejected'])), name='privacyrequest_status_valid'),
        ),
        migrations.RunPython(close_open_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='privacyrequest',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['received', 'verifying', 'verified', 'awaiting_approval', 'in_progress'])), fields=('tenant', 'subject_key', 'kind'), name='privacyrequest_one_open_per_subject_kind'),
        ),
        migrations.AddField(
            model_name='manualstep',
            name='done_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='manualstep',
            name='privacy_request',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='manual_steps', to='privacy.privacyrequest'),
        ),
        migrations.AddField(
            model_name='manualstep',
            name='tenant',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant'),
        ),
        migrations.AddField(
            model_name='requestnote',
            name='author',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='requestnote',
            name='privacy_request',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notes', to='privacy.privacyrequest'),
        ),
        migrations.AddField(
            model_name='requestnote',
            name='tenant',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant'),
        ),
        migrations.AddConstraint(
            model_name='manualstep',
            constraint=models.UniqueConstraint(fields=('privacy_request', 'label'), name='manualstep_label_once_per_request'),
        ),
    ]
