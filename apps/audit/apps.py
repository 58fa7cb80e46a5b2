from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self) -> None:
        from apps.audit.models import SubjectAuditToken
        from apps.audit.services import forget_subject_token
        from apps.privacy.registry import SubjectDataHandler, register_subject_handler

        # The token links audit entries to the subject; erasing it (last, after every other
        # step has been audited) leaves the chain intact and the entries anonymous.
        register_subject_handler(SubjectDataHandler(
            name="audit.subject_token",
            category="audit trail link",
            export=lambda tenant, subject_key: {
                "note": "Operations on your data are recorded in a tamper-evident audit "
                        "trail under a random token that is deleted when your data is erased."
            },
            erase=lambda tenant, subject_key: forget_subject_token(
                tenant=tenant, subject_key=subject_key),
            models=(SubjectAuditToken._meta.label,),
            order=1000,
        ))
