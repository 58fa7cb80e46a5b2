# Keyed audit hashes (issue 14): existing chains keep their plain SHA-256 entries, and
# switch to HMAC-keyed hashes from their next entry on; each head gets its seal
# (apps.audit.sealing explains why the switch is per chain and sealed).

from django.db import migrations, models

from apps.audit.sealing import head_seal


def switch_existing_chains(apps, schema_editor):
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    for head in AuditChainHead.all_tenants.all():
        head.keyed_from_sequence = head.last_sequence + 1
        head.seal = head_seal(tenant_id=head.tenant_id,
                              keyed_from_sequence=head.keyed_from_sequence,
                              pruned_through_sequence=head.pruned_through_sequence,
                              pruned_through_hash=head.pruned_through_hash)
        head.save(update_fields=["keyed_from_sequence", "seal"])


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0004_chain_head_is_tenant_owned'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditchainhead',
            name='keyed_from_sequence',
            field=models.PositiveBigIntegerField(default=1),
        ),
        migrations.AddField(
            model_name='auditchainhead',
            name='seal',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(switch_existing_chains, migrations.RunPython.noop),
    ]
