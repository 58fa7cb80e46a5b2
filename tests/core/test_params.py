"""The hot routes' fast parameter readers (apps/core/params.py) agree with the views'
serializers: whatever a reader accepts, the serializer accepts with the same values, and
whatever the serializer refuses, the reader leaves to it (so every 400 is DRF's own)."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import QueryDict
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.core import params
from apps.modeling.apis import (
    RecommendationListApi,
    SessionRecommendationApi,
    SimilarItemListApi,
)

TEXTS = st.one_of(
    st.sampled_from(["", " ", "  a", "a ", "reader-1", "10", "010", "0", "101", "-1", "+5",
                     " 5", "5 ", "5.0", "1_0", "\u00b2", "\u0661\u0660",
                     "true", "True", "1", "0", "no",
                     "maybe", "on", "OFF", "a,b", " a , b ,,", ",,,", "a\x00b", "\x00",
                     "\x1c", "\t\n", "é", "x" * 512, "x" * 513, ",".join("abc"[i % 3] * 2
                     for i in range(51)), "a," * 2000]),
    st.text(max_size=30),
    st.text(alphabet="ab ,0123456789\t\x00", max_size=20),
)


def _outcome(serializer_class: Any, data: Any) -> dict[str, Any] | None:
    serializer = serializer_class(data=data)
    return dict(serializer.validated_data) if serializer.is_valid() else None


def _agree(serializer_class: Any, fast: Any, data: Any) -> bool:
    """Whether the fast reader vouched for ``data`` (and agreed with the serializer)."""
    expected = _outcome(serializer_class, data)
    try:
        got = fast(data)
    except params.Unsure:
        return False
    assert expected is not None, f"the fast reader accepted what DRF refuses: {data!r}"
    assert got == expected, data
    return True


def _query(values: dict[str, list[str]]) -> QueryDict:
    query = QueryDict(mutable=True)
    for name, given_values in values.items():
        query.setlist(name, given_values)
    return query


QUERIES = st.dictionaries(
    st.sampled_from(["subject", "n", "exclude_seen", "categories", "explain", "other"]),
    st.lists(TEXTS, min_size=1, max_size=2), max_size=6)


@settings(max_examples=400, deadline=None)
@given(QUERIES)
def test_user_recommendation_query_readers_agree(values):
    view = RecommendationListApi
    _agree(view.InputSerializer, view.fast_params, _query(values))


@settings(max_examples=200, deadline=None)
@given(QUERIES)
def test_similar_item_query_readers_agree(values):
    view = SimilarItemListApi
    _agree(view.InputSerializer, view.fast_params, _query(values))


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=False),
              TEXTS),
    lambda inner: st.lists(inner, max_size=55), max_leaves=60)


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.dictionaries(st.sampled_from(["recent_items", "n", "categories", "other"]),
                    JSON_VALUES, max_size=4),
    JSON_VALUES))
def test_session_body_readers_agree(body):
    view = SessionRecommendationApi
    _agree(view.InputSerializer, view.fast_params, body)


@pytest.mark.parametrize(("view", "data"), [
    (RecommendationListApi, _query({"subject": ["reader-1"]})),
    (RecommendationListApi, _query({"subject": ["reader-1"], "n": ["20"], "explain": ["true"],
                                    "exclude_seen": ["false"], "categories": ["a, b"]})),
    (SimilarItemListApi, _query({})),
    (SimilarItemListApi, _query({"n": ["5"], "categories": ["books"]})),
    (SessionRecommendationApi, {"recent_items": ["book-1", "book-2"], "n": 10}),
    (SessionRecommendationApi, {"recent_items": ["book-1"], "categories": ["books"]}),
])
def test_common_requests_take_the_fast_path(view, data):
    assert _agree(view.InputSerializer, view.fast_params, data)


def test_an_invalid_request_gets_the_serializers_errors():
    from rest_framework.exceptions import ValidationError

    view = RecommendationListApi
    with pytest.raises(ValidationError) as raised:
        params.validated_params(view.InputSerializer, _query({"subject": ["s"], "n": ["0"]}),
                                view.fast_params)
    assert raised.value.detail["n"][0].code == "min_value"
