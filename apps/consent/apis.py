"""``/api/v1/subjects/{subject}/consent``: read and record one subject's consent;
``/api/v1/subjects/{subject}/restriction``: lift a restriction of processing (GDPR Art. 18).

``{subject}`` is the client site's own identifier. It is pseudonymized on arrival, never
stored, never echoed and never logged (see :meth:`SubjectConsentApi.finalize_response`).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.consent.models import METHOD_VALIDATOR, ConsentRecord, Level
from apps.consent.selectors import (
    PurposeConsent,
    SubjectConsentDetail,
    get_subject_consent,
    list_restricted_subjects,
)
from apps.consent.services import apply_gpc_opt_out, record_consents, set_restriction
from apps.core.exceptions import ApplicationError
from apps.core.json import api_datetime
from apps.core.serializers import (
    NOT_ONLY_SPACES,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
)
from apps.tenants.apis import TenantApi
from apps.tenants.models import Scope, Tenant
from apps.tenants.services import SUBJECT_ID_MAX_LENGTH, pseudonymize

logger = logging.getLogger("consent.api")

GPC_HEADER = "Sec-GPC"


def has_gpc_signal(request: Request) -> bool:
    """Global Privacy Control: ``Sec-GPC: 1`` (the spec's only valid value)."""
    return request.headers.get(GPC_HEADER, "").strip() == "1"


def _purpose_json(detail: PurposeConsent) -> dict[str, Any]:
    return {
        "granted": detail.granted,
        "notice_version": detail.notice_version,
        "source": detail.source,
        "method": detail.method or None,
        "at": api_datetime(detail.at),
        "expires_at": api_datetime(detail.expires_at),
        "expired": detail.expired,
        "needs_renewal": detail.needs_renewal,
        "default": detail.chosen is None,
        "allowed": detail.allowed,
        "legal_basis": detail.purpose.legal_basis,
        "sale_or_sharing": detail.purpose.is_sale_or_sharing,
    }


NULLABLE_STR = {"type": "string", "nullable": True}
# ``{subject}`` as ``pseudonymize`` takes it: not only spaces, at most 512 characters.
SUBJECT_PATH = OpenApiParameter(
    "subject", {"type": "string", "maxLength": SUBJECT_ID_MAX_LENGTH,
                "pattern": NOT_ONLY_SPACES}, OpenApiParameter.PATH,
    description="Your own identifier for the subject; pseudonymized on arrival.")


@extend_schema_serializer(component_name="ConsentHistoryEntry")
class ConsentHistorySerializer(serializers.Serializer):
    kind = serializers.CharField()
    purpose = serializers.SerializerMethodField()
    granted = serializers.BooleanField(allow_null=True)
    level = serializers.SerializerMethodField()
    notice_version = serializers.SerializerMethodField()
    source = serializers.CharField()
    method = serializers.SerializerMethodField()
    at = serializers.DateTimeField(source="captured_at")

    @extend_schema_field(NULLABLE_STR)
    def get_purpose(self, record: ConsentRecord) -> str | None:
        return record.purpose.key if record.purpose else None

    @extend_schema_field(NULLABLE_STR)
    def get_level(self, record: ConsentRecord) -> str | None:
        return record.level or None

    @extend_schema_field(NULLABLE_STR)
    def get_notice_version(self, record: ConsentRecord) -> str | None:
        return record.notice.version if record.notice else None

    @extend_schema_field(NULLABLE_STR)
    def get_method(self, record: ConsentRecord) -> str | None:
        return record.method or None


@extend_schema_field({"type": "string", "enum": Level.values, "nullable": True})
class LevelField(serializers.JSONField):
    """Any JSON on the way in, so the service answers ``invalid_level`` for a bad one; the
    schema names the levels."""


@extend_schema_serializer(component_name="SubjectConsentFlagsInput")
class ConsentFlagsSerializer(StrictSerializer):
    restricted = StrictBooleanField(required=False)
    objected = StrictBooleanField(required=False)


# One class for both methods because they share one URL (a deliberate exception to STYLE
# S13's class per operation); the docstring below is the OpenAPI description.
class SubjectConsentApi(TenantApi):
    """A subject's consent: the state of every purpose (with the notice version, time and
    source that prove it), the personalization level, the flags and the ledger history.
    ``{subject}`` is your own identifier for the subject; it is pseudonymized on arrival."""

    required_scope = {"GET": Scope.CONSENT_READ, "PUT": Scope.CONSENT_WRITE}

    @extend_schema_serializer(component_name="SubjectConsentInput")
    class InputSerializer(StrictSerializer):
        # validate() below, in schema words: at least one of the three, not empty.
        schema_extra: ClassVar[dict[str, Any]] = {"anyOf": [
            {"required": ["purposes"], "properties": {"purposes": {"minProperties": 1}}},
            {"required": ["level"], "properties": {"level": {"type": "string"}}},
            {"required": ["flags"], "properties": {"flags": {"minProperties": 1}}},
        ]}
        purposes = serializers.DictField(child=StrictBooleanField(), required=False)
        notice_version = StrictCharField(required=False, allow_null=True, max_length=64)
        level = LevelField(required=False, allow_null=True)  # checked by the service
        source = StrictCharField(required=False, allow_blank=True, max_length=64,
                                       validators=[METHOD_VALIDATOR])
        flags = ConsentFlagsSerializer(required=False)
        gpc_override = StrictBooleanField(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not (attrs.get("purposes") or attrs.get("level") is not None
                    or attrs.get("flags")):
                raise serializers.ValidationError(
                    "Send at least one of 'purposes', 'level' or 'flags'.")
            return attrs

    @extend_schema_serializer(component_name="SubjectConsent")
    class OutputSerializer(serializers.Serializer):
        purposes = serializers.SerializerMethodField()
        level = serializers.CharField(source="view.level")
        chosen_level = serializers.CharField(allow_null=True)
        flags = serializers.SerializerMethodField()
        history = ConsentHistorySerializer(many=True)
        history_truncated = serializers.BooleanField()

        @extend_schema_field(OpenApiTypes.OBJECT)
        def get_purposes(self, detail: SubjectConsentDetail) -> dict[str, Any]:
            return {d.purpose.key: _purpose_json(d) for d in detail.purposes}

        @extend_schema_field(OpenApiTypes.OBJECT)
        def get_flags(self, detail: SubjectConsentDetail) -> dict[str, Any]:
            return {
                "restricted": detail.view.restricted,
                "objected": detail.view.objected,
                "do_not_ask_until": api_datetime(detail.do_not_ask_until),
                "gpc": detail.gpc,
            }

    def _subject_key(self, subject: str) -> str:
        return pseudonymize(self.tenant, subject)

    def _respond(self, subject_key: str) -> Response:
        detail = get_subject_consent(tenant=self.tenant, subject_key=subject_key)
        return Response(self.OutputSerializer(detail).data)

    @extend_schema(
        operation_id="subject_consent_retrieve",
        parameters=[SUBJECT_PATH,
                    OpenApiParameter(GPC_HEADER, str, OpenApiParameter.HEADER, required=False,
                                     description="'1' records an opt-out of every "
                                                 "sale/sharing purpose (source 'gpc') when "
                                                 "the key also holds 'consent:write'; "
                                                 "without it a read writes nothing.")],
        responses=OutputSerializer,
    )
    def get(self, request: Request, subject: str) -> Response:
        subject_key = self._subject_key(subject)
        # A read (GET, and HEAD, which runs this) writes only for a key that may write here:
        # a read-only key's Sec-GPC is not recorded (README "Security").
        if has_gpc_signal(request) and self.required_scope["PUT"] in self.api_key.scopes:
            apply_gpc_opt_out(tenant=self.tenant, subject_keys=[subject_key],
                              actor=self.api_key)
        return self._respond(subject_key)

    @extend_schema(operation_id="subject_consent_update", request=InputSerializer,
                   parameters=[SUBJECT_PATH],
                   responses=OutputSerializer)
    def put(self, request: Request, subject: str) -> Response:
        subject_key = self._subject_key(subject)
        try:
            data = request.data
        except exceptions.ParseError as exc:
            raise ApplicationError("The body is not valid JSON.", code="malformed_body") from exc
        serializer = self.InputSerializer(data=data)
        if not serializer.is_valid():
            raise ApplicationError("The body does not have the expected shape.",
                                   code="malformed_body", details=serializer.errors)
        body = serializer.validated_data
        flags = body.get("flags", {})
        restricted = flags.get("restricted")
        if restricted is False and not self._may_lift_restriction(subject_key):
            restricted = None  # nothing to lift: a routine "restricted": false is a no-op
        record_consents(
            tenant=self.tenant,
            subject_key=subject_key,
            decisions=body.get("purposes", {}),
            notice_version=body.get("notice_version"),
            level=body.get("level"),
            method=body.get("source", ""),
            actor=self.api_key,
            gpc=has_gpc_signal(request),
            gpc_override=body.get("gpc_override", False),
            restricted=restricted,
            objected=flags.get("objected"),
        )
        return self._respond(subject_key)

    def _may_lift_restriction(self, subject_key: str) -> bool:
        """Lifting a restriction (Art. 18(3)) takes the ``privacy:write`` scope, as
        ``DELETE .../restriction`` does: a consent key may place one, not lift it. False when
        the subject is not restricted; refused (403 ``missing_scope``) without the scope."""
        if not _is_restricted(self.tenant, subject_key):
            return False
        if Scope.PRIVACY_WRITE not in self.api_key.scopes:
            raise exceptions.PermissionDenied(detail=exceptions.ErrorDetail(
                f"Lifting a restriction needs the '{Scope.PRIVACY_WRITE}' scope.",
                code="missing_scope"))
        return True

    def finalize_response(self, request: Request, response: Response, *args: Any,
                          **kwargs: Any) -> Response:
        return _unlogged_errors(request, super().finalize_response(request, response, *args,
                                                                   **kwargs))


class SubjectRestrictionApi(TenantApi):
    """Lift a subject's restriction of processing (GDPR Art. 18(3)): their data, kept
    untouched while restricted, may be used again under their consent, and retention
    applies to it again. Recorded in the consent ledger and the audit trail. Answers the
    subject's consent, as ``GET /subjects/{subject}/consent`` does; lifting a restriction
    that is not in place (or for a subject never seen) writes nothing.
    ``{subject}`` is your own identifier for the subject; it is pseudonymized on arrival.
    A restriction is placed through a privacy request or the consent ``flags``."""

    required_scope = {"DELETE": Scope.PRIVACY_WRITE}

    @extend_schema(operation_id="subject_restriction_lift", parameters=[SUBJECT_PATH],
                   responses={200: SubjectConsentApi.OutputSerializer})
    def delete(self, request: Request, subject: str) -> Response:
        subject_key = pseudonymize(self.tenant, subject)
        if _is_restricted(self.tenant, subject_key):
            set_restriction(tenant=self.tenant, subject_key=subject_key, restricted=False,
                            actor=self.api_key)
        detail = get_subject_consent(tenant=self.tenant, subject_key=subject_key)
        return Response(SubjectConsentApi.OutputSerializer(detail).data)

    def finalize_response(self, request: Request, response: Response, *args: Any,
                          **kwargs: Any) -> Response:
        return _unlogged_errors(request, super().finalize_response(request, response, *args,
                                                                   **kwargs))


def _is_restricted(tenant: Tenant, subject_key: str) -> bool:
    return list_restricted_subjects(tenant=tenant).filter(subject_key=subject_key).exists()


def _unlogged_errors(request: Request, response: Response) -> Response:
    """Django's request logger would print the path, which holds the raw subject id: log an
    error's outcome without it and mark the response as logged."""
    if response.status_code >= 400:
        error = response.data.get("error", {}) if isinstance(response.data, dict) else {}
        logger.warning("consent.api_error status=%s code=%s method=%s",
                       response.status_code, error.get("code"), request.method)
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response
