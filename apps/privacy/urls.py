from django.urls import path

from apps.privacy.apis import PrivacyRequestCreateApi, PrivacyRequestDetailApi

urlpatterns: list = [
    path("privacy-requests", PrivacyRequestCreateApi.as_view(), name="privacy-request-list"),
    path("privacy-requests/<int:request_id>", PrivacyRequestDetailApi.as_view(),
         name="privacy-request-detail"),
]
