"""HTTP interface of the modeling app: recommendations and the model bundle (STYLE S13).

Every recommendation endpoint answers ``{"model_version", "personalized", "reason",
"items": [{"item", "score", ...}]}``. The subject's id is pseudonymized on arrival and
goes no further.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core import params as fast
from apps.core.json import FastJSONRenderer
from apps.core.serializers import QuerySerializer, StrictCharField
from apps.modeling.services import (
    model_bundle,
    recommend_for_session,
    recommend_for_subject,
    similar_items,
)
from apps.modeling.services.serving import MAX_N, MAX_SESSION_ITEMS
from apps.tenants.apis import TenantApi
from apps.tenants.models import Scope
from apps.tenants.services import pseudonymize

MAX_CATEGORIES = 50
CATEGORIES_MAX_LENGTH = 2000


def split_categories(text: str) -> list[str]:
    """``"a, b,,"`` -> ``["a", "b"]``: the one reading of a ``categories`` query value."""
    return [c.strip() for c in text.split(",") if c.strip()]


def fast_categories(query: Any) -> list[str]:
    """``categories`` as :class:`CategoriesField` reads it, for plain ASCII text
    (:mod:`apps.core.params`)."""
    if "categories" not in query:
        return []
    text = query.get("categories")
    if (type(text) is not str or len(text) > CATEGORIES_MAX_LENGTH or not text.isascii()
            or "\x00" in text):
        raise fast.Unsure
    names = split_categories(text)
    if len(names) > MAX_CATEGORIES:
        raise fast.Unsure
    return names


class CategoriesField(StrictCharField):
    """``categories=a,b`` -> ``["a", "b"]`` (an item matches when it has any of them).
    Blank is allowed: DRF reads an empty query value of an optional field as absent."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_blank=True, **kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        text = super().run_validation(data)  # the text's own checks: type, length, NUL
        if not isinstance(text, str):
            return text  # the default
        names = split_categories(text)
        if len(names) > MAX_CATEGORIES:
            raise serializers.ValidationError(f"At most {MAX_CATEGORIES} categories.")
        return names


class BecauseSerializer(serializers.Serializer):
    item = serializers.CharField()
    weight = serializers.FloatField()


class ItemSerializer(serializers.Serializer):
    item = serializers.CharField()
    score = serializers.FloatField()
    because = BecauseSerializer(many=True, required=False,
                                help_text="Only with explain=true: the subject's own past "
                                "items that drove this recommendation.")


class RecommendationOutput(serializers.Serializer):
    model_version = serializers.IntegerField(allow_null=True)
    personalized = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True, help_text="Why the answer is not "
                                   "personalized: restricted, objected, level_off, "
                                   "level_session, no_consent, unknown_subject, no_model, "
                                   "session, no_known_items, insufficient_support, "
                                   "item_not_in_model.")
    items = ItemSerializer(many=True)


class RecommendationListApi(TenantApi):
    """``GET /api/v1/recommendations?subject=...``: personalized when consent allows."""

    required_scope = Scope.RECOMMENDATIONS_READ
    renderer_classes = [FastJSONRenderer]  # plain data: strings, numbers, lists

    class InputSerializer(QuerySerializer):
        subject = StrictCharField(max_length=512, trim_whitespace=False, spaces_are_blank=True)
        n = serializers.IntegerField(min_value=1, max_value=MAX_N, default=10)
        exclude_seen = serializers.BooleanField(default=True)
        categories = CategoriesField(required=False, default=list,
                                     max_length=CATEGORIES_MAX_LENGTH)
        explain = serializers.BooleanField(default=False)

    @staticmethod
    def fast_params(query: Any) -> dict[str, Any]:
        """What ``InputSerializer`` validates, for common input (apps/core/params.py)."""
        return {"subject": fast.query_text(query, "subject", 512),
                "n": fast.query_int(query, "n", 10, 1, MAX_N),
                "exclude_seen": fast.query_bool(query, "exclude_seen", True),
                "categories": fast_categories(query),
                "explain": fast.query_bool(query, "explain", False)}

    @extend_schema(parameters=[InputSerializer], responses=RecommendationOutput)
    def get(self, request: Request) -> Response:
        data = fast.validated_params(self.InputSerializer, request.query_params,
                                     self.fast_params)
        result = recommend_for_subject(
            tenant=self.tenant, subject_key=pseudonymize(self.tenant, data["subject"]),
            n=data["n"], exclude_seen=data["exclude_seen"], categories=data["categories"],
            explain=data["explain"])
        return Response(result.as_dict())


class SessionRecommendationApi(TenantApi):
    """``POST /api/v1/recommendations/session``: from the session's recent items only;
    nothing about the caller is stored."""

    required_scope = Scope.RECOMMENDATIONS_READ
    renderer_classes = [FastJSONRenderer]

    class InputSerializer(serializers.Serializer):
        recent_items = serializers.ListField(
            child=StrictCharField(max_length=256, trim_whitespace=False),
            min_length=1, max_length=MAX_SESSION_ITEMS)
        n = serializers.IntegerField(min_value=1, max_value=MAX_N, default=10)
        categories = serializers.ListField(child=StrictCharField(max_length=100),
                                           required=False, default=list,
                                           max_length=MAX_CATEGORIES)

    @staticmethod
    def fast_params(data: Any) -> dict[str, Any]:
        """What ``InputSerializer`` validates, for common input (apps/core/params.py)."""
        body = fast.json_object(data)
        return {"recent_items": fast.body_texts(body, "recent_items", min_items=1,
                                                max_items=MAX_SESSION_ITEMS, max_length=256),
                "n": fast.body_int(body, "n", 10, 1, MAX_N),
                "categories": fast.body_texts(body, "categories", max_items=MAX_CATEGORIES,
                                              max_length=100, default=[])}

    @extend_schema(request=InputSerializer, responses=RecommendationOutput)
    def post(self, request: Request) -> Response:
        data = fast.validated_params(self.InputSerializer, request.data, self.fast_params)
        result = recommend_for_session(tenant=self.tenant, recent_items=data["recent_items"],
                                       n=data["n"], categories=data["categories"])
        return Response(result.as_dict())


class SimilarItemListApi(TenantApi):
    """``GET /api/v1/items/{item}/similar``: items like this one, each list resting on at
    least k distinct subjects (tenant setting ``model_min_support``, default 5)."""

    required_scope = Scope.RECOMMENDATIONS_READ
    renderer_classes = [FastJSONRenderer]

    class InputSerializer(QuerySerializer):
        n = serializers.IntegerField(min_value=1, max_value=MAX_N, default=10)
        categories = CategoriesField(required=False, default=list,
                                     max_length=CATEGORIES_MAX_LENGTH)

    @staticmethod
    def fast_params(query: Any) -> dict[str, Any]:
        """What ``InputSerializer`` validates, for common input (apps/core/params.py)."""
        return {"n": fast.query_int(query, "n", 10, 1, MAX_N),
                "categories": fast_categories(query)}

    @extend_schema(parameters=[InputSerializer], responses=RecommendationOutput)
    def get(self, request: Request, item: str) -> Response:
        data = fast.validated_params(self.InputSerializer, request.query_params,
                                     self.fast_params)
        result = similar_items(tenant=self.tenant, item=item, n=data["n"],
                               categories=data["categories"])
        return Response(result.as_dict())


class BundleWeightingOutput(serializers.Serializer):
    scheme = serializers.ChoiceField(choices=["none", "tfidf", "bm25"], help_text=(
        "How the factors' input was weighted; weight your own history the same way "
        "before the solve (docs/modeling.md)."))
    k1 = serializers.FloatField(required=False, help_text="bm25 only.")
    b = serializers.FloatField(required=False, help_text="bm25 only.")
    average_length = serializers.FloatField(required=False, help_text=(
        "tfidf and bm25: mean distinct items per subject (bm25's length normalization)."))
    idf = serializers.ListField(child=serializers.FloatField(), required=False,
                                help_text="tfidf and bm25: per shipped item, same order.")


class ModelBundleOutput(serializers.Serializer):
    model_version = serializers.IntegerField()
    algorithm = serializers.CharField(help_text="The algorithm that serves the API now.")
    factors_algorithm = serializers.CharField(help_text="The item-embedding algorithm whose "
                                              "factors these are (fitted in every training).")
    min_support = serializers.IntegerField(help_text="k: only items with at least k distinct "
                                           "subjects are shipped (model_min_support).")
    factors = serializers.IntegerField()
    regularization = serializers.FloatField()
    alpha = serializers.FloatField()
    weighting = BundleWeightingOutput()
    items = serializers.ListField(child=serializers.CharField())
    item_factors = serializers.ListField(child=serializers.ListField(
        child=serializers.FloatField()))
    gram = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()),
                                 help_text="YᵀY + λI over all item factors.")


class ModelBundleApi(TenantApi):
    """``GET /api/v1/model-bundle``: the active model for on-device scoring (active items
    at or above the ``model_min_support`` floor)."""

    required_scope = Scope.RECOMMENDATIONS_READ

    @extend_schema(responses=ModelBundleOutput)
    def get(self, request: Request) -> Response:
        return Response(model_bundle(tenant=self.tenant))
