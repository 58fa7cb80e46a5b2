from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    # Its subject data (the audit-trail token) is declared in apps/audit/subject_data.py.
