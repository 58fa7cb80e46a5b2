"""Masking for anything that may carry personal data on its way to a log line."""

from __future__ import annotations

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
