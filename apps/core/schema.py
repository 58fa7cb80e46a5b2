"""OpenAPI generation (drf-spectacular)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from apps.core.serializers import StrictSerializer


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

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, StrictSerializer):  # it refuses unknown keys
            schema["additionalProperties"] = False
        # Rules between fields the serializer enforces (e.g. "exactly one of"), in schema words.
        schema.update(getattr(serializer, "schema_extra", {}))
        return schema

    def _get_request_for_media_type(self, serializer: Any, direction: str = "request") -> Any:
        # A body that must hold at least one property (``minProperties``) is a required body,
        # although no single field is required (e.g. "exactly one of days, hours").
        schema, required = super()._get_request_for_media_type(serializer, direction)
        extra = getattr(serializer, "schema_extra", None)
        if isinstance(extra, dict) and extra.get("minProperties", 0) > 0:
            required = True
        return schema, required


# Every answer the API may give besides an operation's own success, all in the one error
# shape (``apps.core.exceptions``). Declared on every operation by the hook below, not per
# view, so a new view cannot forget them and the schema says what clients must handle.
ERROR_RESPONSES: dict[str, str] = {
    "400": "The request is not valid (`invalid`, `malformed_request`, or a domain code).",
    "401": "No API key, or an invalid, revoked or expired one.",
    "403": "The key lacks the scope this operation needs (`missing_scope`).",
    "404": "No such object for this key's tenant (another tenant's objects are not found).",
    "405": "The method is not allowed on this route.",
    "406": "The `Accept` header asks for a media type other than JSON.",
    "409": "The request conflicts with the object's state.",
    "413": "The request body is larger than the API accepts.",
    "415": "The body is not `application/json`.",
    "429": "Too many requests for this key; retry after `Retry-After` seconds.",
    "503": "A dependency (database, broker, cache) is unavailable; retry later.",
}
ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The one error shape of the API.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. "
                         "`invalid`, `not_found`, `missing_scope`."},
                "message": {"type": "string", "description": "For people; may change."},
                "details": {"type": "object", "additionalProperties": True,
                            "description": "Per-field errors for `invalid`, else context."},
            },
        },
    },
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool,
                        **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the shared ``Error`` component, and every
    status in :data:`ERROR_RESPONSES` on every operation that does not declare it itself."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_COMPONENT] = ERROR_SCHEMA
    ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "put", "post", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                if status == "415" and "requestBody" not in operation:
                    continue
                responses[status] = {"description": description,
                                     "content": {"application/json": {"schema": ref}}}
    return result


class JsonErrorsMixin:
    """Errors of a view whose success is not JSON (the OpenAPI document, the docs page)
    still answer in the shared JSON error shape: a 405 on /api/schema/ was YAML."""

    def handle_exception(self, exc: Exception) -> Any:
        from rest_framework.renderers import JSONRenderer

        renderer = JSONRenderer()
        self.request.accepted_renderer = renderer  # type: ignore[attr-defined]
        self.request.accepted_media_type = renderer.media_type  # type: ignore[attr-defined]
        return super().handle_exception(exc)  # type: ignore[misc]


def schema_views() -> tuple[Any, Any]:
    """``/api/schema/`` and ``/api/docs/`` with JSON errors."""
    from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

    class SchemaView(JsonErrorsMixin, SpectacularAPIView):
        pass

    class DocsView(JsonErrorsMixin, SpectacularSwaggerSplitView):
        pass

    return SchemaView, DocsView
