"""Masking for anything that may carry personal data or a live secret on its way to a log
line (README "Security").

Every log handler runs :class:`MaskPersonalDataFilter`, which rewrites each record's message,
exception text and stack before it is written: a subject id in an API path or query string
(``/subjects/<id>/...``, ``?subject=<id>``), an email address, and a privacy-portal token
(``/download/<token>``, ``token=<token>``) and a team invitation's token
(``/invitations/<token>``) become ``MASKED``, however they are
percent-encoded. The subject segment is masked whole: ids may contain ``/`` (the route is
``subjects/<path:subject>/consent``), so everything up to the route's last part goes.
"""

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


def _encoded(text: str) -> str:
    """A pattern for ``text`` with any of its characters also percent-encoded, once or more
    (``/``, ``%2F``, ``%252F``...); used with ``re.IGNORECASE``."""
    return "".join(f"(?:{re.escape(ch)}|%(?:25)*{ord(ch):02X})" for ch in text)


_END = r"""(?=[?\s"'<>]|$)"""  # a path ends at its query, a blank, a quote or the text's end
_ROUTE_TAIL = rf"(?:{_encoded('/')}(?:consent|restriction))?"
_SUBJECT_IN_PATH = re.compile(
    rf"({_encoded('/subjects/')})[^?\s\"'<>]*?({_ROUTE_TAIL}){_END}", re.IGNORECASE)
_PARAMETER_START = r"(?:[?&;]|%(?:25)*(?:3F|26|3B))"
_SUBJECT_IN_QUERY = re.compile(
    rf"({_PARAMETER_START}{_encoded('subject')}(?:=|%(?:25)*3D))[^&\s\"'<>]*", re.IGNORECASE)
_TOKEN_IN_PATH = re.compile(rf"({_encoded('/download/')}|{_encoded('/invitations/')})"
                            rf"[^/?\s\"'<>]+", re.IGNORECASE)
_TOKEN_IN_QUERY = re.compile(
    rf"({_PARAMETER_START}{_encoded('token')}(?:=|%(?:25)*3D))[^&\s\"'<>]*", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.!#$%&*+/=?^`{|}~-]+(?:@|%(?:25)*40)[\w-]+(?:\.[\w-]+)+",
                    re.IGNORECASE)


def mask_subject_ids(text: str) -> str:
    """Replace the client's subject id in a URL path or query string by ``MASKED``."""
    text = _SUBJECT_IN_PATH.sub(r"\1MASKED\2", text)
    return _SUBJECT_IN_QUERY.sub(r"\1MASKED", text)


def mask_personal_data(text: str) -> str:
    """Subject ids, portal tokens and email addresses in ``text`` replaced by ``MASKED``."""
    text = mask_subject_ids(text)
    text = _TOKEN_IN_PATH.sub(r"\1MASKED", text)
    text = _TOKEN_IN_QUERY.sub(r"\1MASKED", text)
    return _EMAIL.sub("MASKED", text)


class MaskPersonalDataFilter(logging.Filter):
    """Logging filter on every handler (settings ``LOGGING``): Django's and gunicorn's request
    lines print paths (``/api/v1/subjects/alice@example.com/consent``), a failed mail's
    exception names its recipients, a portal URL carries a live token."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: written as its bare format string, masked
            record.msg, record.args = mask_personal_data(str(record.msg)), ()
            return True
        masked = mask_personal_data(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_personal_data(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_personal_data(record.stack_info)
        return True


MaskSubjectIdsFilter = MaskPersonalDataFilter  # the name earlier settings used
