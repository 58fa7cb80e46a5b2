from django.urls import path

from apps.webhooks import apis

urlpatterns = [
    path("webhooks", apis.WebhookListApi.as_view(), name="webhook-list"),
    path("webhooks/<int:webhook_id>", apis.WebhookDetailApi.as_view(), name="webhook-detail"),
]
