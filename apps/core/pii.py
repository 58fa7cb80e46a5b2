"""Masking for anything that may carry personal data on its way to a log line."""

from __future__ import annotations

import logging
import re

from django.conf import settings


class Masked:
    """Wraps a value so that logging it prints ``MASKED`` unless ``DISCREET_LOG_PII`` is set
    in a local debug session."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def __str__(self) -> str:
        if settings.DEBUG and getattr(settings, "DISCREET_LOG_PII", False):
            return str(self._value)
        return "MASKED"

    __repr__ = __str__


def mask(value: object) -> Masked:
    return Masked(value)


_SUBJECT_IN_PATH = re.compile(r"(/subjects/)[^/?\s\"]+")
_SUBJECT_IN_QUERY = re.compile(r"([?&]subject=)[^&\s\"]+")


def mask_subject_ids(text: str) -> str:
    """Replace the client's subject id in a URL path or query string by ``MASKED``."""
    return _SUBJECT_IN_QUERY.sub(r"\1MASKED", _SUBJECT_IN_PATH.sub(r"\1MASKED", text))


class MaskSubjectIdsFilter(logging.Filter):
    """Logging filter for Django's request and server loggers, which print request paths:
    a path like ``/api/v1/subjects/alice@example.com/consent`` carries a raw identifier."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_subject_ids(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
