"""Webhooks in the admin: endpoints (the secret shown once, on creation) and the delivery
log (status, attempts, last response code), scoped to the member's tenants."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from apps.core.exceptions import ApplicationError
from apps.tenants.admin import ReadOnlyTenantScopedAdmin, TenantScopedAdmin
from apps.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import (
    create_webhook_endpoint,
    validate_endpoint_url,
    validate_event_types,
)


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    events = forms.MultipleChoiceField(choices=EventType.choices,
                                       widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["tenant", "url", "description", "events", "is_active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if url != self.instance.url:
            try:
                validate_endpoint_url(url)
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message, code=exc.code) from exc
        return url

    def clean_events(self) -> list[str]:
        try:
            return validate_event_types(self.cleaned_data["events"])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "tenant", "events", "is_active", "deleted_at", "created_at"]
    list_filter = ["is_active"]
    list_select_related = ["tenant"]
    readonly_fields = ["created_by", "deleted_at", "created_at"]

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any,
                   change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        self.assign_member_tenant(request, obj)
        endpoint, secret = create_webhook_endpoint(
            tenant=obj.tenant, url=obj.url, events=form.cleaned_data["events"],
            description=obj.description, created_by=request.user, is_active=obj.is_active)
        obj.pk = endpoint.pk
        messages.warning(request, "Copy this signing secret now; it will not be shown "
                                  f"again: {secret}")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyTenantScopedAdmin):
    """The delivery log."""

    list_display = ["event_type", "endpoint", "status", "attempts", "last_response_code",
                    "last_attempt_at", "next_attempt_at", "created_at"]
    list_filter = ["status", "event_type"]
    list_select_related = ["endpoint"]
    fields = ["endpoint", "event_type", "message_id", "status", "attempts", "max_attempts",
              "last_response_code", "last_error", "last_attempt_at", "next_attempt_at",
              "finished_at", "payload", "created_at"]
    readonly_fields = fields
