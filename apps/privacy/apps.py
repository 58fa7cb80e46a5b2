from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "apps.privacy"
    label = "privacy"
    verbose_name = "Privacy requests"
    # Its subject data is declared in apps/privacy/subject_data.py. Not registered with
    # django-auditlog on purpose: its change log would copy the subject key of every
    # request; services write the domain audit trail instead.
