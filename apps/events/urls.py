from django.urls import path

from apps.events import apis

urlpatterns = [
    path("events", apis.EventIngestApi.as_view(), name="event-ingest"),
    path("items", apis.ItemUpsertApi.as_view(), name="item-upsert"),
    # <path:> so that item ids may contain "/" (URL-encoded or not).
    path("items/<path:item>", apis.ItemDeactivateApi.as_view(), name="item-deactivate"),
]
