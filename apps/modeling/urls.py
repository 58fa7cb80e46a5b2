from django.urls import path

from apps.modeling import apis

urlpatterns = [
    path("recommendations", apis.RecommendationListApi.as_view(), name="recommendations"),
    path("recommendations/session", apis.SessionRecommendationApi.as_view(),
         name="recommendations-session"),
    # <path:> so that item ids may contain "/", like the catalog routes.
    path("items/<path:item>/similar", apis.SimilarItemListApi.as_view(), name="item-similar"),
    path("model-bundle", apis.ModelBundleApi.as_view(), name="model-bundle"),
]
