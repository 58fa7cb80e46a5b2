from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    # Its subject data (the audit-trail token) is declared in apps/audit/subject_data.py.

    def ready(self) -> None:
        from apps.audit.services import record_subject_data_viewed
        from apps.tenants.signals import subject_data_viewed

        # The admin (tenancy layer) says when subject data is opened; the entry is written
        # here, in the same request (privacy invariant 5).
        subject_data_viewed.connect(record_subject_data_viewed,
                                    dispatch_uid="audit.subject_data_viewed")
