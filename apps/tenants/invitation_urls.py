from django.urls import path

from apps.tenants.views import AcceptInvitationView

urlpatterns = [
    path("<str:token>/", AcceptInvitationView.as_view(), name="invitation-accept"),
]
