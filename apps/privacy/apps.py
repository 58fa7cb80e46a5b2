from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "apps.privacy"
    label = "privacy"
    verbose_name = "Privacy requests"

    def ready(self) -> None:
        from apps.privacy import handlers

        # The privacy app's own subject data, its erasure verifiers (export files, caches,
        # Celery results) and the retention rules shown in exports and "my data".
        # Not registered with django-auditlog on purpose: its change log would copy the
        # subject key of every request; services write the domain audit trail instead.
        handlers.register()
