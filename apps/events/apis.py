"""HTTP interface of the events app: catalog upserts and event ingestion (STYLE S13)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.json import FastJSONRenderer
from apps.core.serializers import StrictBooleanField, StrictCharField
from apps.events.services import (
    MAX_EVENTS_PER_BATCH,
    MAX_ITEMS_PER_BATCH,
    Reason,
    Status,
    deactivate_item,
    ingest_events,
    upsert_items,
)
from apps.tenants.apis import TenantApi
from apps.tenants.models import Scope


class EventBatchField(serializers.Field):
    """The ``events`` list of the envelope. Only the envelope is checked here: each event is
    judged by the ingestion service, which reports a reason per index instead of refusing
    the batch. (A per-event serializer would also cost more than the rest of the request.)
    """

    default_error_messages = {
        "not_a_list": "Expected a list of events.",
        "too_many": f"At most {MAX_EVENTS_PER_BATCH} events per request.",
    }

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        if len(data) > MAX_EVENTS_PER_BATCH:
            self.fail("too_many")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class EventInput(serializers.Serializer):
    """One event, for the API documentation only (validation is the service's)."""

    event_id = serializers.CharField(max_length=128, help_text="Unique per tenant; the "
                                     "dedupe key. Retries must reuse it.")
    subject = serializers.CharField(max_length=512, help_text="The client site's subject "
                                    "id; pseudonymized on arrival, never stored.")
    item = serializers.CharField(max_length=256)
    type = serializers.CharField(help_text="An event type of the tenant's schema.")
    occurred_at = serializers.DateTimeField(help_text="ISO 8601 with a time zone.")
    value = serializers.FloatField(required=False, allow_null=True)
    properties = serializers.DictField(required=False)


class EventBatchDoc(serializers.Serializer):
    """The envelope as the API checks it: a list of at most 1,000 values. Each event is
    judged by itself and reported per index (``results``), so an event of another shape is
    a 200 with ``status: rejected``, not a 400."""

    events = serializers.ListField(
        child=serializers.JSONField(), max_length=MAX_EVENTS_PER_BATCH,
        help_text="Events, each an object with `event_id`, "
                  "`subject`, `item`, `type`, `occurred_at` (ISO 8601 with a time zone), "
                  "optional `value` and `properties`.")


class EventIngestApi(TenantApi):
    """``POST /api/v1/events``: up to 1,000 events; 200 with a result per event."""

    required_scope = Scope.EVENTS_WRITE
    renderer_classes = [FastJSONRenderer]  # the report is plain data: ints and strings

    class InputSerializer(serializers.Serializer):
        events = EventBatchField()

    class OutputSerializer(serializers.Serializer):
        class ResultSerializer(serializers.Serializer):
            index = serializers.IntegerField()
            status = serializers.ChoiceField(choices=[s.value for s in Status])
            reason = serializers.ChoiceField(choices=[r.value for r in Reason], allow_null=True)

        results = ResultSerializer(many=True)
        accepted = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        rejected = serializers.IntegerField()
        dropped_properties = serializers.DictField(child=serializers.IntegerField())

    @extend_schema(
        request=EventBatchDoc,
        parameters=[OpenApiParameter(
            "Sec-GPC", str, OpenApiParameter.HEADER, required=False,
            description="'1' (Global Privacy Control): opt the batch's subjects out, as "
                        "the consent service defines it, before the events are judged.")],
        responses=OutputSerializer,
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = ingest_events(
            tenant=self.tenant,
            events=serializer.validated_data["events"],
            gpc=request.headers.get("Sec-GPC", "").strip() == "1",
            actor=self.api_key,
        )
        # The report is already plain JSON data; re-serializing 1,000 results would only
        # cost time on the hot path.
        return Response(report.as_dict())


class ItemInputSerializer(serializers.Serializer):
    item = StrictCharField(max_length=256, trim_whitespace=False)
    title = StrictCharField(max_length=500, required=False, allow_blank=True)
    categories = serializers.ListField(child=StrictCharField(max_length=100),
                                       required=False, max_length=50)
    attributes = serializers.DictField(required=False)
    active = StrictBooleanField(required=False, default=True)


class ItemUpsertApi(TenantApi):
    """``PUT /api/v1/items``: create or replace up to 1,000 catalog items."""

    required_scope = Scope.CATALOG_WRITE

    class InputSerializer(serializers.Serializer):
        items = serializers.ListField(child=ItemInputSerializer(), max_length=MAX_ITEMS_PER_BATCH)

    class OutputSerializer(serializers.Serializer):
        received = serializers.IntegerField()
        created = serializers.IntegerField()
        updated = serializers.IntegerField()
        dropped_attributes = serializers.DictField(child=serializers.IntegerField())

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def put(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = upsert_items(tenant=self.tenant, items=serializer.validated_data["items"],
                              actor=self.api_key)
        return Response(self.OutputSerializer(report.as_dict()).data)


class ItemDeactivateApi(TenantApi):
    """``DELETE /api/v1/items/{item}``: deactivate (items are never deleted)."""

    required_scope = Scope.CATALOG_WRITE

    @extend_schema(responses={204: None})
    def delete(self, request: Request, item: str) -> Response:
        deactivate_item(tenant=self.tenant, external_id=item, actor=self.api_key)
        return Response(status=status.HTTP_204_NO_CONTENT)
