from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "apps.consent"
    label = "consent"
    verbose_name = "Consent"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from apps.consent.models import (
            ConsentRecord,
            ConsentState,
            PrivacyNotice,
            Purpose,
            SubjectState,
        )
        from apps.consent.services import provision_consent_defaults
        from apps.privacy.registry import model_handler, register_subject_handler
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

        # Erasure: the current state first, the ledger (the proof) last. What proof survives
        # an erasure is the privacy app's decision (issue 6); until then it all goes.
        register_subject_handler(model_handler(
            SubjectState, category="consent: personalization level and flags",
            export_fields=["level", "restricted", "objected", "objected_at",
                           "do_not_ask_until", "updated_at"],
            order=880, name="consent.subject_state"))
        register_subject_handler(model_handler(
            ConsentState, category="consent: current choices",
            export_fields=["purpose__key", "granted", "notice__version", "source", "method",
                           "captured_at"],
            order=890, name="consent.state"))
        register_subject_handler(model_handler(
            ConsentRecord, category="consent: history of choices",
            export_fields=["kind", "purpose__key", "granted", "level", "notice__version",
                           "source", "method", "captured_at"],
            order=900, name="consent.ledger"))
