from __future__ import annotations

import logging

import pytest

from apps.core.pii import MaskSubjectIdsFilter, mask_subject_ids


@pytest.mark.parametrize(("text", "expected"), [
    ("Not Found: /api/v1/subjects/alice@example.com/consent",
     "Not Found: /api/v1/subjects/MASKED/consent"),
    ('"GET /api/v1/recommendations?subject=u-42&n=5 HTTP/1.1" 200',
     '"GET /api/v1/recommendations?subject=MASKED&n=5 HTTP/1.1" 200'),
    ("/api/v1/items/sku-1/similar", "/api/v1/items/sku-1/similar"),
])
def test_subject_ids_in_paths_are_masked(text, expected):
    assert mask_subject_ids(text) == expected


def test_the_filter_rewrites_django_request_records():
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s: %s",
                               ("Bad Request", "/api/v1/subjects/bob@example.com/consent"), None)
    assert MaskSubjectIdsFilter().filter(record)
    assert "bob@example.com" not in record.getMessage()


def test_django_request_logs_go_through_the_masking_filter(settings):
    handlers = logging.getLogger("django.request").handlers
    assert any(isinstance(f, MaskSubjectIdsFilter) for h in handlers for f in h.filters)
