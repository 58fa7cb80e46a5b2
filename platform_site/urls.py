from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core.views import healthz

admin.site.site_header = "Discreet administration"
admin.site.site_title = "Discreet"

api_v1 = [
    path("", include("apps.tenants.urls")),
    path("", include("apps.consent.urls")),
    # Before events: its items/<path:item> would also match items/<item>/similar.
    path("", include("apps.modeling.urls")),
    path("", include("apps.events.urls")),
    path("", include("apps.privacy.urls")),
    path("", include("apps.retention.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("privacy/", include("apps.privacy.portal_urls")),
    path("invitations/", include("apps.tenants.invitation_urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"),
         name="api-docs"),
]

handler404 = "apps.core.exceptions.json_not_found"
handler500 = "apps.core.exceptions.json_server_error"
