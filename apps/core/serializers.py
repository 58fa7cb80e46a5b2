"""Serializer pieces that accept exactly what the OpenAPI schema says (README "API
conformance check"): DRF's defaults are lenient where the schema is not (a ``CharField``
turns ``0`` into ``"0"``, a serializer ignores unknown keys)."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

# What ``str.strip()`` removes (DRF trims text fields with it), spelled out: ``\\s`` means
# slightly different characters in Python and in the schema's ECMAScript regexes.
_SPACE = "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace())
# The schema's ``pattern`` for text inputs: DRF refuses NUL characters (PostgreSQL cannot
# store them), and a required text that trims to nothing is blank; saying so in the schema
# lets clients and fuzzers know before they send one.
# A text with something besides spaces (any other character, NUL included).
NOT_ONLY_SPACES = rf"^[\s\S]*[^{_SPACE}][\s\S]*$"
NO_NUL = RegexValidator(r"^[^\x00]*$", message="Null characters are not allowed.")
NOT_BLANK = RegexValidator(rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$",
                           message="This field may not be blank.")


class StrictCharField(serializers.CharField):
    """A JSON string only: numbers, booleans, lists and objects are refused (``invalid``),
    not turned into text, so ``"subject": 0`` is a 400 rather than the subject ``"0"``."""

    def __init__(self, *, spaces_are_blank: bool | None = None, **kwargs: Any) -> None:
        """``spaces_are_blank``: whether a text of spaces alone is refused as blank; by
        default when DRF trims it (``trim_whitespace``). Pass ``True`` for an untrimmed text
        that the service refuses when blank, such as a subject id."""
        super().__init__(**kwargs)
        if spaces_are_blank is None:
            spaces_are_blank = self.trim_whitespace
        self.validators.append(NOT_BLANK if spaces_are_blank and not self.allow_blank
                               else NO_NUL)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class QuerySerializer(serializers.Serializer):
    """Query parameters as the schema says: DRF reads ``?n=`` (an empty value of an optional
    field) as absent and uses the default; here it is refused, as the schema's type says,
    unless the field is a text that may be blank."""

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "getlist"):
            blank = {name: ["This field may not be blank."] for name, field in self.fields.items()
                     if data.get(name) == "" and not getattr(field, "allow_blank", False)}
            if blank:
                raise serializers.ValidationError(blank)
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true``/``false`` only: a consent is never inferred from ``"yes"`` or ``1``."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError  # unreachable: fail() raises


class StrictSerializer(serializers.Serializer):
    """Refuses unknown keys, so a typo ("purpose") is an error, not a silent no-op. The
    schema says so too: ``additionalProperties: false`` (``apps.core.schema``)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)
