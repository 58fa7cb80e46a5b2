"""``GET /api/v1/records-of-processing`` (scope ``settings:manage``): the key's tenant's
records of processing activities (GDPR Art. 30), as JSON, or as CSV with ``?format=csv`` or
``Accept: text/csv``. Errors keep the API's one JSON error shape whatever was asked for."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.exceptions import ApplicationError
from apps.tenants.apis import TenantApi
from apps.tenants.models import Scope
from apps.transparency.selectors import get_records_of_processing, records_to_csv


class RecordsCsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict[str, Any] | None = None) -> bytes:
        return records_to_csv(data).encode("utf-8")


class _Purpose(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    legal_basis = serializers.CharField()
    legal_basis_label = serializers.CharField()
    sale_or_sharing = serializers.BooleanField()
    uses_sensitive_data = serializers.BooleanField()
    aggregate_only = serializers.BooleanField()


class _DataCategory(serializers.Serializer):
    name = serializers.CharField(help_text="The declared store, e.g. 'events.event'.")
    category = serializers.CharField()
    retention_category = serializers.CharField()
    retention_days = serializers.IntegerField(allow_null=True)
    retention_hours = serializers.IntegerField(allow_null=True)
    retention = serializers.CharField(help_text="The rule in plain words.")
    erasure = serializers.CharField()
    restriction = serializers.CharField()
    rectification = serializers.CharField()
    used_for_training = serializers.BooleanField()


class _RetentionPeriod(serializers.Serializer):
    category = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    days = serializers.IntegerField(allow_null=True)
    hours = serializers.IntegerField(allow_null=True)
    time_based = serializers.BooleanField()


class _SubProcessor(serializers.Serializer):
    name = serializers.CharField()
    purpose = serializers.CharField()
    location = serializers.CharField()
    transfer_mechanism = serializers.ChoiceField(
        choices=["none", "adequacy", "scc", "bcr", "derogation"])
    transfer_mechanism_label = serializers.CharField()
    safeguards = serializers.CharField()


class _Transfer(serializers.Serializer):
    sub_processor = serializers.CharField()
    location = serializers.CharField()
    mechanism = serializers.CharField()
    safeguards = serializers.CharField()


class _Controller(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.CharField()
    contact_email = serializers.CharField(allow_null=True)


class RecordsOfProcessingApi(TenantApi):
    """The records of processing of the key's tenant: purposes, categories of subjects and
    of data (every declared store, with its retention period), recipients, sub-processors,
    transfers, retention periods and security measures. Not paginated: one document."""

    required_scope = Scope.SETTINGS_MANAGE
    renderer_classes = [JSONRenderer, RecordsCsvRenderer]

    class OutputSerializer(serializers.Serializer):
        generated_at = serializers.DateTimeField()
        controller = _Controller()
        processor = serializers.CharField()
        purposes = _Purpose(many=True)
        categories_of_subjects = serializers.ListField(child=serializers.CharField())
        categories_of_data = _DataCategory(many=True)
        retention_periods = _RetentionPeriod(many=True)
        recipients = serializers.ListField(child=serializers.CharField())
        sub_processors = _SubProcessor(many=True)
        transfers = _Transfer(many=True)
        security_measures = serializers.ListField(child=serializers.CharField())

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # DRF ignores an empty ``?format=`` and answers an unknown one with a 404; both are
        # a client's mistake, answered as one 400.
        requested = request.query_params.get("format")
        if requested is not None and requested not in ("json", "csv"):
            raise ApplicationError("format is 'json' or 'csv'.", code="unknown_format",
                                   details={"allowed": ["json", "csv"]})
        return super().perform_content_negotiation(request, force)

    def finalize_response(self, request: Request, response: Any, *args: Any,
                          **kwargs: Any) -> Any:
        # Errors are always the JSON error shape, also when CSV was asked for.
        if getattr(response, "status_code", 200) >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        operation_id="records_of_processing_retrieve",
        parameters=[OpenApiParameter(
            "format", str, OpenApiParameter.QUERY, enum=["json", "csv"], required=False,
            description="`csv` for one CSV table (`section,name,field,value`); the "
                        "`Accept` header (`application/json`, `text/csv`) works too.")],
        responses={
            (200, "application/json"): OutputSerializer,
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="The same records, one value per row: section, name, field, "
                            "value."),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(get_records_of_processing(tenant=self.tenant))
