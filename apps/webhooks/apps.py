from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apps.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from apps.webhooks.models import WebhookEndpoint

        # Endpoints are configuration: their changes are audited (never the secret).
        auditlog.register(WebhookEndpoint, exclude_fields=["secret_ciphertext"])
