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

EDGES = ["", " ", "  a", "a ", "reader-1", "10", "010", "0", "1", "100", "101", "-1", "+5",
         " 5", "5 ", "5.0", "1_0", "\u00b2", "\u0661\u0660", "true", "True", "TRUE", "t",
         "yes", "no", "off", "0", "maybe", "on", "OFF", "null", "a,b", " a , b ,,", ",,,",
         "a\x00b", "\x00", "\x1c", "\t\n", "é", "x" * 512, "x" * 513,
         ",".join("abc"[i % 3] * 2 for i in range(50)),
         ",".join("abc"[i % 3] * 2 for i in range(51)), "a," * 1000, "a," * 1001]
TEXTS = st.one_of(st.sampled_from(EDGES), st.text(max_size=30),
                  st.text(alphabet="ab ,0123456789\t\x00", max_size=20))


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


#: Each parameter absent, valid, or anything: mostly well-formed queries with one or two odd
#: values, where a reader that is too lenient would show.
VALID = {"subject": ["reader-1", "u-2"], "n": ["1", "10", "100"], "categories": ["a", "a,b"],
         "exclude_seen": ["true", "false", "0"], "explain": ["true", "False", "1"]}
QUERIES = st.fixed_dictionaries({}, optional={
    **{name: st.one_of(st.lists(st.sampled_from(values), min_size=1, max_size=2),
                       st.lists(TEXTS, min_size=1, max_size=2))
       for name, values in VALID.items()},
    "other": st.lists(TEXTS, min_size=1, max_size=1)})


@pytest.mark.parametrize("name", [*VALID, "other"])
def test_every_odd_value_of_each_parameter_agrees(name):
    """A well-formed query with one parameter set to each edge case in turn."""
    base = {key: values[:1] for key, values in VALID.items()}
    for value in EDGES:
        for view in (RecommendationListApi, SimilarItemListApi):
            _agree(view.InputSerializer, view.fast_params, _query({**base, name: [value]}))
            _agree(view.InputSerializer, view.fast_params,
                   _query({**base, name: [value, "10"]}))  # the last value counts


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


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 200),
                    st.floats(allow_nan=False), TEXTS, st.sampled_from(["book-1", "books"]))
JSON_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=55),
                        st.lists(st.sampled_from(["book-1", "book-2", "books"]), max_size=55))


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


ODD_JSON = [None, True, False, 0, 1, 10, 100, 101, -1, 5.0, 5.5, "5", "", " ", "a ", "a\x00",
            "é", "x" * 256, "x" * 257, [], ["a"], ["a", ""], ["a", 1], ["a", None], ["a "],
            ["b"] * 50, ["b"] * 51, {"a": 1}]


@pytest.mark.parametrize("name", ["recent_items", "n", "categories", "other"])
def test_every_odd_value_of_each_session_field_agrees(name):
    base = {"recent_items": ["book-1"], "n": 10, "categories": ["books"]}
    view = SessionRecommendationApi
    for value in ODD_JSON:
        _agree(view.InputSerializer, view.fast_params, {**base, name: value})
