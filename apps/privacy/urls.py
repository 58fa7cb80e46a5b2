from django.urls import path

from apps.privacy.apis import (
    PrivacyRequestApproveApi,
    PrivacyRequestCreateApi,
    PrivacyRequestDenyApi,
    PrivacyRequestDetailApi,
)

urlpatterns: list = [
    path("privacy-requests", PrivacyRequestCreateApi.as_view(), name="privacy-request-list"),
    path("privacy-requests/<int:request_id>", PrivacyRequestDetailApi.as_view(),
         name="privacy-request-detail"),
    path("privacy-requests/<int:request_id>/approve", PrivacyRequestApproveApi.as_view(),
         name="privacy-request-approve"),
    path("privacy-requests/<int:request_id>/deny", PrivacyRequestDenyApi.as_view(),
         name="privacy-request-deny"),
]
