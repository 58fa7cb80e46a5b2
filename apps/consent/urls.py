from django.urls import path

from apps.consent.apis import SubjectConsentApi, SubjectRestrictionApi

urlpatterns: list = [
    # <path:> so that subject ids may contain "/" (URL-encoded or not).
    path("subjects/<path:subject>/consent", SubjectConsentApi.as_view(), name="subject-consent"),
    path("subjects/<path:subject>/restriction", SubjectRestrictionApi.as_view(),
         name="subject-restriction"),
]
