from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "apps.consent"
    label = "consent"
    verbose_name = "Consent"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from apps.consent.models import PrivacyNotice, Purpose
        from apps.consent.services import provision_consent_defaults
        from apps.tenants.config_memo import watch_tenant_config
        from apps.tenants.services import register_tenant_provisioner

        # Configuration is captured by django-auditlog; subject rows go through services,
        # which write the domain AuditEvent themselves.
        auditlog.register(Purpose)
        auditlog.register(PrivacyNotice, m2m_fields={"purposes"})
        # Consent checks memoize the purposes (and the notices renewals point to).
        watch_tenant_config(Purpose)
        watch_tenant_config(PrivacyNotice, m2m=(PrivacyNotice.purposes.through,))

        register_tenant_provisioner(provision_consent_defaults)
