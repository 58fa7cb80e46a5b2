from django.apps import AppConfig


class TransparencyConfig(AppConfig):
    name = "apps.transparency"
    label = "transparency"
    verbose_name = "Transparency"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from apps.transparency.models import SubProcessor

        # The sub-processor registry is configuration: every change is audited (and anchored
        # in the tenant's audit chain like every django-auditlog entry).
        auditlog.register(SubProcessor)
