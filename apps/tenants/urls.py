from django.urls import path

from apps.tenants import apis

urlpatterns = [
    path("", apis.ApiRootApi.as_view(), name="api-root"),
    path("api-keys", apis.ApiKeyListApi.as_view(), name="api-key-list"),
    path("api-keys/<int:key_id>", apis.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("settings", apis.SettingsApi.as_view(), name="tenant-settings"),
]
