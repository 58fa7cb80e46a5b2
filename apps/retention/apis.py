"""``/api/v1/retention-policies``: read and set a tenant's retention policies, so tenants can
keep their configuration as code (scope ``retention:manage``)."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.exceptions import ApplicationError
from apps.core.schema import DiscreetAutoSchema
from apps.core.serializers import StrictSerializer
from apps.retention.categories import retention_categories
from apps.retention.selectors import PolicyView, get_retention_policy, list_retention_policies
from apps.retention.services import (
    MAX_DAYS,
    MAX_HOURS,
    is_period_settable,
    set_retention_policy,
)
from apps.tenants.apis import TenantApi
from apps.tenants.models import Scope

PERIOD_FIELDS = frozenset({"days", "hours"})


class RetentionPolicyInputSerializer(StrictSerializer):
    """The body of ``PUT``, for the schema: exactly one of the two, a whole number in range
    (the service's rules; the view checks them so its error codes stay specific)."""

    schema_extra: ClassVar[dict[str, int]] = {"minProperties": 1, "maxProperties": 1}
    days = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DAYS)
    hours = serializers.IntegerField(required=False, min_value=1, max_value=MAX_HOURS)


@extend_schema_serializer(component_name="RetentionPolicy")
class PolicySerializer(serializers.Serializer):
    category = serializers.CharField(help_text="e.g. 'events'.")
    days = serializers.IntegerField(allow_null=True, help_text="The period in days, as set "
                                    "(null when set in hours or following another category).")
    hours = serializers.IntegerField(allow_null=True, help_text="The period in hours, as set.")
    period_seconds = serializers.IntegerField(allow_null=True,
                                              help_text="The effective period.")
    follows = serializers.CharField(allow_null=True, help_text="The category whose period "
                                    "this one uses (inactive subjects follow events).")
    editable = serializers.BooleanField()
    default_days = serializers.IntegerField(allow_null=True)
    unit = serializers.CharField(help_text="What the run's counts count: rows or subjects.")
    label = serializers.CharField()
    description = serializers.CharField()
    updated_at = serializers.DateTimeField(allow_null=True)


def _policy_json(view: PolicyView) -> dict[str, Any]:
    category = view.category
    return PolicySerializer({
        "category": category.code,
        "days": view.days,
        "hours": view.hours,
        "period_seconds": int(view.period.total_seconds()) if view.period else None,
        "follows": category.follows,
        "editable": view.editable,
        "default_days": category.default_days,
        "unit": category.unit,
        "label": str(category.label),
        "description": str(category.description),
        "updated_at": view.policy.updated_at if view.policy else None,
    }).data


class RetentionPolicyListApi(TenantApi):
    """Every retention category's policy for the key's tenant, in enforcement order. Not
    paginated: one entry per category, a short and fixed list."""

    required_scope = Scope.RETENTION_MANAGE

    @extend_schema(operation_id="retention_policies_list", responses=PolicySerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response([_policy_json(v) for v in list_retention_policies(tenant=self.tenant)])


class RetentionPolicySchema(DiscreetAutoSchema):
    """``{category}`` as an enum, read when the schema is generated: every category for
    ``GET``, the settable ones for ``PUT`` (another is ``period_not_settable``)."""

    def get_override_parameters(self) -> list[Any]:
        codes = [c.code for c in retention_categories()
                 if self.method == "GET" or is_period_settable(c)]
        return [*super().get_override_parameters(),
                OpenApiParameter("category", str, OpenApiParameter.PATH, enum=codes)]


# One class for both methods because they share one URL (as SubjectConsentApi does).
class RetentionPolicyDetailApi(TenantApi):
    """One category's policy. ``PUT`` with ``{"days": N}`` or ``{"hours": N}`` sets its
    period; errors: ``malformed_body``, ``unknown_field``, ``missing_period``,
    ``ambiguous_period``, ``invalid_period``, ``period_not_settable`` (400) and
    ``unknown_category`` (404)."""

    required_scope = Scope.RETENTION_MANAGE
    schema = RetentionPolicySchema()

    @extend_schema(operation_id="retention_policy_retrieve", responses=PolicySerializer)
    def get(self, request: Request, category: str) -> Response:
        return Response(_policy_json(get_retention_policy(tenant=self.tenant,
                                                          category=category)))

    @extend_schema(
        operation_id="retention_policy_update",
        request=extend_schema_serializer(component_name="RetentionPolicyInput")(
            RetentionPolicyInputSerializer),
        responses=PolicySerializer,
    )
    def put(self, request: Request, category: str) -> Response:
        try:
            data = request.data
        except exceptions.ParseError as exc:
            raise ApplicationError("The body is not valid JSON.", code="malformed_body") from exc
        if not isinstance(data, dict):
            raise ApplicationError('The body is a JSON object: {"days": N} or {"hours": N}.',
                                   code="malformed_body")
        unknown = sorted(set(data) - PERIOD_FIELDS)
        if unknown:
            raise ApplicationError(f"Unknown field(s): {', '.join(unknown)}.",
                                   code="unknown_field", details={"unknown": unknown})
        given = [name for name in sorted(PERIOD_FIELDS & set(data)) if data[name] is not None]
        for name in sorted(PERIOD_FIELDS & set(data)):
            if data[name] is None and given:  # a null beside a period is not "absent"
                raise ApplicationError(f'"{name}" must be a whole number.',
                                       code="invalid_period", details={"field": name})
        view = set_retention_policy(tenant=self.tenant, category=category,
                                    days=data.get("days"), hours=data.get("hours"),
                                    actor=self.api_key)
        return Response(_policy_json(view))
