"""The site's URLconf with the modeling routes first.

``apps/events/urls.py`` has ``items/<path:item>`` (DELETE), which is included before the
modeling routes and so also matches ``items/<item>/similar``. Until the site URLconf
includes modeling before events, tests of the similar-items route use this ordering.
"""

from django.urls import include, path

from platform_site import urls as site

urlpatterns = [path("api/v1/", include("apps.modeling.urls")), *site.urlpatterns]
