"""OpenAPI generation (drf-spectacular)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema


class DiscreetAutoSchema(AutoSchema):
    """Names serializers nested in an API class after that class (STYLE S13 nests an
    ``InputSerializer``/``OutputSerializer`` in every ``<Noun><Verb>Api``), so
    ``EventIngestApi.OutputSerializer`` becomes the component ``EventIngestOutput``
    instead of colliding with every other ``Output``."""

    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        cls = serializer if isinstance(serializer, type) else type(serializer)
        parts = cls.__qualname__.split(".")
        if len(parts) > 1 and "<locals>" not in parts:
            return "".join(p.removesuffix("Serializer").removesuffix("Api") for p in parts)
        return super().get_serializer_name(serializer, direction)
