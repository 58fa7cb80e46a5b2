"""``/api/v1/privacy-requests``: a tenant's backend files a request for a user it has
already authenticated (the tenant attests the verification), then polls its status.

The subject id in the body is pseudonymized on arrival and never stored, echoed or logged.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.consent.services import Level
from apps.core.exceptions import ApplicationError
from apps.core.json import api_datetime
from apps.core.serializers import StrictCharField, StrictSerializer
from apps.privacy.kinds import all_kinds, find_kind, kind_values
from apps.privacy.models import PrivacyRequest
from apps.privacy.selectors import get_privacy_request
from apps.privacy.services import (
    COMPLAINT_RIGHTS,
    approve_privacy_request,
    deny_privacy_request,
    export_link,
    file_privacy_request,
)
from apps.tenants.apis import TenantApi
from apps.tenants.models import Scope
from apps.tenants.services import SUBJECT_ID_MAX_LENGTH, pseudonymize

RECTIFICATION_DETAILS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "consents": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "level": {"type": "string", "enum": list(Level.values)},
        "delete_events": {"type": "array", "maxItems": 1000, "items": {
            "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^\\x00]*$"}},
    },
}


class PrivacyRequestOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    kind = serializers.CharField()
    regime = serializers.CharField()
    channel = serializers.CharField()
    status = serializers.ChoiceField(choices=PrivacyRequest.Status.choices)
    received_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    verification = serializers.SerializerMethodField()
    extension = serializers.SerializerMethodField()
    completed_at = serializers.DateTimeField(allow_null=True)
    rejection = serializers.SerializerMethodField()
    result = serializers.JSONField()
    download = serializers.SerializerMethodField()
    erasure_verification = serializers.SerializerMethodField()
    approval = serializers.SerializerMethodField()

    def get_approval(self, pr: PrivacyRequest) -> dict[str, Any] | None:
        """Set once the request was held for an officer's approval and approved."""
        if pr.approved_at is None:
            return None
        return {"approved_at": api_datetime(pr.approved_at)}

    def get_verification(self, pr: PrivacyRequest) -> dict[str, Any]:
        return {"method": pr.verification_method or None,
                "verified_at": api_datetime(pr.verified_at)}

    def get_extension(self, pr: PrivacyRequest) -> dict[str, Any] | None:
        if not pr.is_extended:
            return None
        return {"extended_at": api_datetime(pr.extended_at), "reason": pr.extension_reason,
                "original_due_at": api_datetime(pr.original_due_at)}

    def get_rejection(self, pr: PrivacyRequest) -> dict[str, Any] | None:
        if pr.status != PrivacyRequest.Status.REJECTED:
            return None
        return {"rejected_at": api_datetime(pr.rejected_at), "reason": pr.rejection_reason,
                "complaint": COMPLAINT_RIGHTS.get(pr.regime, "")}

    def get_download(self, pr: PrivacyRequest) -> dict[str, Any] | None:
        policy = find_kind(pr.kind)
        if policy is None or not policy.produces_export or (
                pr.status != PrivacyRequest.Status.COMPLETED):
            return None
        request = self.context.get("request")
        origin = request.build_absolute_uri("/").rstrip("/") if request else None
        return export_link(privacy_request=pr, origin=origin)

    def get_erasure_verification(self, pr: PrivacyRequest) -> dict[str, Any] | None:
        if not pr.erasure_check:
            return None
        return {"checked_at": pr.erasure_check.get("checked_at"),
                "hits": len(pr.erasure_check.get("hits", [])),
                "places_checked": pr.erasure_check.get("places", [])}


class PrivacyRequestCreatedSerializer(PrivacyRequestOutputSerializer):
    duplicate_of = serializers.IntegerField(
        allow_null=True, help_text="Set (to the open request's id, which is also `id`) when "
        "the subject already had an open request of this kind: no second request was made.")


def _serialize(pr: PrivacyRequest, request: Request) -> dict[str, Any]:
    return PrivacyRequestOutputSerializer(pr, context={"request": request}).data


def _get(tenant: Any, request_id: int) -> PrivacyRequest:
    try:
        return get_privacy_request(tenant=tenant, pk=request_id)
    except ApplicationError:
        from rest_framework.exceptions import NotFound

        raise NotFound() from None


class PrivacyRequestCreateApi(TenantApi):
    """File a request on behalf of an authenticated user. Flag kinds (restriction, objection,
    opt-out, limit) and rectifications are applied before the answer; access, portability
    and erasure run in a job (poll the detail route). A kind the tenant holds for approval
    (``privacy_approval_kinds``) answers ``awaiting_approval``.

    When the subject already has an open request of this kind, no second one is made: the
    answer is **200** with that request and ``duplicate_of`` set to its id (201 and
    ``duplicate_of: null`` for a new request)."""

    required_scope = Scope.PRIVACY_WRITE

    class InputSerializer(StrictSerializer):
        # The kinds table's, read when the serializer is made (the schema lists them too).
        kind = serializers.ChoiceField(choices=[])
        subject = StrictCharField(max_length=SUBJECT_ID_MAX_LENGTH, trim_whitespace=False,
                                  spaces_are_blank=True)
        regime = serializers.ChoiceField(choices=PrivacyRequest.Regime.values, required=False)
        details = serializers.DictField(required=False)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.fields["kind"].choices = kind_values()

        @property
        def schema_extra(self) -> dict[str, Any]:
            """Which kinds carry ``details`` and what a rectification's are
            (``clean_rectification``), in schema words; read when the schema is made."""
            carriers = [k.value for k in all_kinds() if k.carries_details]
            plain = [k for k in kind_values() if k not in carriers]
            # ``not`` + ``enum``: the enum postprocessing hook would fold a bare ``enum`` into
            # the shared kind component, losing the split.
            return {"oneOf": [
                {"properties": {"kind": {"not": {"enum": carriers}},
                                "details": {"type": "object", "maxProperties": 0}}},
                {"properties": {"kind": {"not": {"enum": plain}},
                                "details": RECTIFICATION_DETAILS}},
            ]}

    @extend_schema(operation_id="privacy_request_create", request=InputSerializer,
                   responses={201: PrivacyRequestCreatedSerializer,
                              200: PrivacyRequestCreatedSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        body = serializer.validated_data
        filing = file_privacy_request(
            tenant=self.tenant, kind=body["kind"], regime=body.get("regime"),
            channel=PrivacyRequest.Channel.API,
            subject_key=pseudonymize(self.tenant, body["subject"]),
            payload=body.get("details") or {},
            verification=PrivacyRequest.Verification.TENANT_ATTESTED,
            actor=self.api_key,
        )
        pr = filing.request
        pr.refresh_from_db()
        data = {**_serialize(pr, request), "duplicate_of": pr.pk if filing.duplicate else None}
        return Response(data, status=status.HTTP_200_OK if filing.duplicate
                        else status.HTTP_201_CREATED)


class PrivacyRequestDetailApi(TenantApi):
    """Status of one of the tenant's requests (any channel); another tenant's is a 404."""

    required_scope = Scope.PRIVACY_WRITE

    @extend_schema(operation_id="privacy_request_retrieve",
                   responses=PrivacyRequestOutputSerializer)
    def get(self, request: Request, request_id: int) -> Response:
        return Response(_serialize(_get(self.tenant, request_id), request))


class PrivacyRequestApproveApi(TenantApi):
    """Approve a request held in ``awaiting_approval``: it is fulfilled as a verified
    request is (flag kinds before the answer, jobs after). 409 ``not_awaiting_approval`` in
    any other status, 409 ``manual_steps_open`` while a manual step is unticked; another
    tenant's request is a 404."""

    required_scope = Scope.PRIVACY_WRITE

    @extend_schema(operation_id="privacy_request_approve", request=None,
                   responses=PrivacyRequestOutputSerializer)
    def post(self, request: Request, request_id: int) -> Response:
        pr = approve_privacy_request(privacy_request=_get(self.tenant, request_id),
                                     actor=self.api_key)
        return Response(_serialize(pr, request))


class PrivacyRequestDenyApi(TenantApi):
    """Deny a request held in ``awaiting_approval``: it is rejected and the reason, with the
    subject's right to complain, is emailed to the subject (when the request has an
    address). 409 ``not_awaiting_approval`` in any other status."""

    required_scope = Scope.PRIVACY_WRITE

    class InputSerializer(StrictSerializer):
        reason = StrictCharField(max_length=2000, spaces_are_blank=True)

    @extend_schema(operation_id="privacy_request_deny", request=InputSerializer,
                   responses=PrivacyRequestOutputSerializer)
    def post(self, request: Request, request_id: int) -> Response:
        pr = _get(self.tenant, request_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pr = deny_privacy_request(privacy_request=pr,
                                  reason=serializer.validated_data["reason"],
                                  actor=self.api_key)
        return Response(_serialize(pr, request))
