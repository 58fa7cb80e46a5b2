from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "apps.retention"
    label = "retention"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from apps.core.subject_data import use_retention_periods
        from apps.retention.models import RetentionPolicy
        from apps.retention.selectors import get_retention_period
        from apps.retention.services import provision_retention_policies
        from apps.tenants.config_memo import watch_tenant_config
        from apps.tenants.services import register_tenant_provisioner

        # Every tenant starts with the default policies; edits are configuration, audited.
        register_tenant_provisioner(provision_retention_policies)
        auditlog.register(RetentionPolicy)
        watch_tenant_config(RetentionPolicy)  # ingestion memoizes the events period
        # What subjects are told (exports, the portal's "my data") follows the policies.
        use_retention_periods(
            lambda tenant, category: get_retention_period(tenant=tenant, category=category))
