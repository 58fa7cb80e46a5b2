from typing import Any

from django.apps import AppConfig


def _anchor_new_log_entry(sender: Any, instance: Any, created: bool, raw: bool = False,
                          **kwargs: Any) -> None:
    """``post_save`` of django-auditlog's LogEntry: every new one, whichever path wrote it."""
    if created and not raw:  # raw: loaddata restores rows, it does not change configuration
        from apps.audit.services import anchor_config_change

        anchor_config_change(log_entry=instance)


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    # Its subject data (the audit-trail token) is declared in apps/audit/subject_data.py.

    def ready(self) -> None:
        from auditlog import get_logentry_model
        from auditlog.signals import post_log, pre_log
        from django.db.models.signals import post_save

        from apps.audit.config_changes import forget_logged_instance, remember_logged_instance
        from apps.audit.services import record_subject_data_viewed
        from apps.tenants.signals import subject_data_viewed

        # The admin (tenancy layer) says when subject data is opened; the entry is written
        # here, in the same request (privacy invariant 5).
        subject_data_viewed.connect(record_subject_data_viewed,
                                    dispatch_uid="audit.subject_data_viewed")
        # django-auditlog's configuration changes are anchored in the tenant's chain
        # (apps.audit.config_changes): pre_log tells which object a LogEntry is about.
        pre_log.connect(remember_logged_instance, dispatch_uid="audit.remember_logged")
        post_log.connect(forget_logged_instance, dispatch_uid="audit.forget_logged")
        post_save.connect(_anchor_new_log_entry, sender=get_logentry_model(),
                          dispatch_uid="audit.anchor_log_entry")
