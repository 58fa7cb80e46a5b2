from django.urls import path

from apps.retention import apis

urlpatterns: list = [
    path("retention-policies", apis.RetentionPolicyListApi.as_view(),
         name="retention-policy-list"),
    path("retention-policies/<str:category>", apis.RetentionPolicyDetailApi.as_view(),
         name="retention-policy-detail"),
]
