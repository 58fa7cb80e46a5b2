"""The platform's URLconf plus the benchmark's floor: a bare Django view that returns a
constant JSON body, under the API's prefix (so it passes the same middleware as the API)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from platform_site.urls import handler404, handler500, urlpatterns  # noqa: F401

_BODY = b'{"ok":true}'


def floor(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_BODY, content_type="application/json")


urlpatterns = [path("api/v1/bench-floor", floor), *urlpatterns]
