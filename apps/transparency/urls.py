"""``/api/v1/records-of-processing`` (included in the API's URLconf)."""

from django.urls import path

from apps.transparency import apis

urlpatterns: list = [
    path("records-of-processing", apis.RecordsOfProcessingApi.as_view(),
         name="records-of-processing"),
]
