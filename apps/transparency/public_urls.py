"""The public transparency page, included under ``/privacy/`` beside the portal."""

from django.urls import path

from apps.transparency import views

app_name = "transparency"

urlpatterns: list = [
    path("<slug:slug>/how-recommendations-work", views.how_recommendations_work,
         name="how-recommendations-work"),
]
