from django.contrib import admin
from django.urls import include, path, re_path

from apps.console.dashboard import jobs_view
from apps.console.views import api_not_found, landing
from apps.core.schema import schema_views
from apps.core.views import healthz
from platform_site.metrics import metrics_view

SchemaView, DocsView = schema_views()

admin.site.site_header = "Discreet administration"
admin.site.site_title = "Discreet"
admin.site.index_title = "Dashboard"

api_v1 = [
    # First: the recommendation routes are the API's hot path, and Django tries these
    # patterns in order (issue 18). Before events: its items/<path:item> would also match
    # items/<item>/similar.
    path("", include("apps.modeling.urls")),
    path("", include("apps.tenants.urls")),
    path("", include("apps.consent.urls")),
    path("", include("apps.events.urls")),
    path("", include("apps.privacy.urls")),
    path("", include("apps.retention.urls")),
    path("", include("apps.transparency.urls")),
    path("", include("apps.webhooks.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),  # first: the API's hot path (above)
    path("", landing, name="landing"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    # The dashboard's live job progress (apps/console/dashboard.py), before the admin's
    # catch-all.
    path("admin/console/jobs", jobs_view, name="console-jobs"),
    path("admin/", admin.site.urls),
    path("privacy/", include("apps.transparency.public_urls")),
    path("privacy/", include("apps.privacy.portal_urls")),
    path("invitations/", include("apps.tenants.invitation_urls")),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script (CSP).
    path("api/docs/", DocsView.as_view(url_name="api-schema"),
         name="api-docs"),
    # Last: any other path under /api/ is a JSON 404 (every method, DEBUG or not).
    path("api/", api_not_found),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
]

handler404 = "apps.core.exceptions.json_not_found"
handler500 = "apps.core.exceptions.json_server_error"
