"""The privacy portal for data subjects, included under ``/privacy/``."""

from django.urls import path

from apps.privacy import portal

app_name = "privacy-portal"

urlpatterns: list = [
    path("<slug:slug>/", portal.home, name="home"),
    path("<slug:slug>/request", portal.make_request, name="request"),
    path("<slug:slug>/request/sent", portal.sent, name="sent"),
    path("<slug:slug>/verify", portal.verify, name="verify"),
    path("<slug:slug>/start", portal.start, name="start"),
    path("<slug:slug>/signout", portal.signout, name="signout"),
    path("<slug:slug>/requests/<str:reference>", portal.status, name="status"),
    path("<slug:slug>/download/<str:token>", portal.download, name="download"),
    path("<slug:slug>/preferences", portal.preferences, name="preferences"),
    path("<slug:slug>/my-data", portal.my_data, name="my_data"),
    path("<slug:slug>/why", portal.why, name="why"),
    path("<slug:slug>/language", portal.choose_language, name="language"),
]
