"""The policy table of privacy request kinds (DESIGN "Declarations: request kinds").

One frozen :class:`RequestKind` per kind says everything the rest of the app needs to know
about it: its labels (admin and emails, portal), whether its requester must be verified, its
clock per regime, what it carries (the details a rectification names), the function that
fulfils it and whether that runs at once or as a durable job, whether it produces an export
and whether it erases the subject. Requests, deadlines, fulfilment, forms, portal and API
read only this table; a kind that is not in it is refused (:func:`get_kind`), never handled
by a fallback branch.

Adding a kind is one entry in :data:`TABLE` plus its fulfil function. The model's ``kind``
choices are read from the table (:func:`kind_choices`, a callable the migration names, so
adding a kind needs no migration), and ``PrivacyRequest.Kind`` is built from it.

This module is a leaf: fulfil functions and detail validators are named by dotted path and
imported on first use, so the services that read the table are not imported by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from django.db import models
from django.utils.functional import Promise
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from apps.core.exceptions import ApplicationError

#: Length of ``PrivacyRequest.kind``; a kind's value must fit.
KIND_MAX_LENGTH = 16


@dataclass(frozen=True)
class ClockRule:
    """When a request is due, counted from receipt (computed by ``services.deadlines``).

    ``answer`` units after receipt; the one allowed extension (if any) moves the due date to
    ``answer + extension`` units after receipt and must be decided before the original due
    date; ``acknowledge_business_days``: the receipt must be acknowledged within that many
    business days."""

    unit: Literal["months", "days", "business_days"]
    answer: int
    extension: int | None = None
    acknowledge_business_days: int | None = None


#: GDPR Art. 12(3): one month, extendable by two further months (the subject told why
#: within the first month).
GDPR_CLOCK = ClockRule("months", 1, extension=2)
#: CCPA regulations §7021: acknowledge within 10 business days; answer within 45 calendar
#: days, extendable once by 45 more with notice within the first 45.
CCPA_CLOCK = ClockRule("days", 45, extension=45, acknowledge_business_days=10)
#: CCPA §7026(f), §7027(g): opt-out of sale/sharing and "limit" within 15 business days
#: (whatever the regime: they are applied at once anyway).
OPT_OUT_CLOCK = ClockRule("business_days", 15)

ANSWER_CLOCKS: Mapping[str, ClockRule] = MappingProxyType(
    {"gdpr": GDPR_CLOCK, "ccpa": CCPA_CLOCK})
OPT_OUT_CLOCKS: Mapping[str, ClockRule] = MappingProxyType(
    {"gdpr": OPT_OUT_CLOCK, "ccpa": OPT_OUT_CLOCK})


@dataclass(frozen=True)
class RequestKind:
    """The policy of one kind of privacy request."""

    #: Stored in ``PrivacyRequest.kind`` and sent by the API (``"erasure"``).
    value: str
    #: The model's display label: admin, emails, "my data" (``get_kind_display``).
    label: str
    #: What the portal's form offers, and the hint under it (translated: apps/privacy/locale).
    portal_label: str | Promise
    portal_hint: str | Promise
    #: Due dates per regime (``"gdpr"``, ``"ccpa"``).
    clocks: Mapping[str, ClockRule]
    #: Dotted path of the fulfil function, called once the request is verified:
    #: * ``as_job=False``: ``(*, privacy_request, actor) -> Any``, at once, inside the
    #:   transaction that verifies the (locked) request;
    #: * ``as_job=True``: ``(*, job) -> None``, by the worker, for the request's durable
    #:   ``FulfilmentJob`` (sent after commit); it must be idempotent (checkpointed steps).
    fulfil: str
    as_job: bool = False
    #: False: applied without verifying the requester (CCPA regulations §7026(d), §7027(e)).
    needs_verification: bool = True
    #: The request ends with a downloadable export (its contact is kept to send the link).
    produces_export: bool = False
    #: The request erases its subject: no portal session is opened for them, its receipt is
    #: shown to whoever holds the reference, and it cannot be rejected once under way.
    erases_subject: bool = False
    #: Dotted path of ``(payload: Mapping) -> dict`` that checks and normalises what the
    #: request carries (raising ``ApplicationError``); ``None``: it carries nothing. A kind
    #: with details waits, once verified, until they arrive (the portal asks the subject).
    details: str | None = None

    def __post_init__(self) -> None:
        if not self.value or len(self.value) > KIND_MAX_LENGTH:
            raise ValueError(f"kind {self.value!r}: 1 to {KIND_MAX_LENGTH} characters")
        if not self.clocks:
            raise ValueError(f"kind {self.value!r}: no clock")
        object.__setattr__(self, "clocks", MappingProxyType(dict(self.clocks)))

    @property
    def carries_details(self) -> bool:
        return self.details is not None

    def clock(self, regime: str) -> ClockRule:
        """The clock of this kind under ``regime``; refused when the table has none."""
        try:
            return self.clocks[regime]
        except KeyError:
            raise ApplicationError(
                f"A {self.value} request has no deadline under '{regime}'.",
                code="unmapped_kind", details={"kind": self.value, "regime": regime},
            ) from None

    @cached_property
    def fulfil_function(self) -> Callable[..., Any]:
        return _resolve(self, self.fulfil)

    def ensure_resolvable(self) -> None:
        """Refuse (``unmapped_kind``) a kind whose fulfil function or details check cannot
        be found, before a request of it is stored."""
        _resolve(self, self.fulfil)
        if self.details is not None:
            _resolve(self, self.details)

    def clean_details(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What the request carries, checked; empty when it carries nothing."""
        if not payload:
            return {}
        if self.details is None:
            carriers = " or ".join(k.value for k in all_kinds() if k.carries_details)
            raise ApplicationError(f"Only {carriers} requests carry details.",
                                   code="unexpected_details")
        return dict(_resolve(self, self.details)(payload))


def _resolve(kind: RequestKind, path: str) -> Callable[..., Any]:
    try:
        return import_string(path)
    except ImportError:
        raise ApplicationError(f"Requests of kind '{kind.value}' cannot be handled here.",
                               code="unmapped_kind", details={"kind": kind.value}) from None


_FLAGS = "apps.privacy.services.flags"

#: The table, by value, in the order forms and lists show the kinds.
TABLE: dict[str, RequestKind] = {k.value: k for k in (
    RequestKind(
        value="access", label="Access (GDPR Art. 15 / CCPA right to know)",
        portal_label=_("Get a copy of my data"),
        portal_hint=_("A file with everything held about you, and what it is used for."),
        clocks=ANSWER_CLOCKS, fulfil="apps.privacy.services.export.export_subject_data",
        as_job=True, produces_export=True),
    RequestKind(
        value="portability", label="Portability (GDPR Art. 20)",
        portal_label=_("Take my data elsewhere"),
        portal_hint=_("The same copy, in machine-readable files (JSON and CSV)."),
        clocks=ANSWER_CLOCKS, fulfil="apps.privacy.services.export.export_subject_data",
        as_job=True, produces_export=True),
    RequestKind(
        value="erasure", label="Erasure (GDPR Art. 17 / CCPA delete)",
        portal_label=_("Delete my data"), portal_hint=_("Everything held about you is deleted."),
        clocks=ANSWER_CLOCKS, fulfil="apps.privacy.services.erasure.erase_subject",
        as_job=True, erases_subject=True),
    RequestKind(
        value="rectification", label="Rectification (GDPR Art. 16 / CCPA correct)",
        portal_label=_("Correct my data"),
        portal_hint=_("Change your choices, or remove interactions from your history."),
        clocks=ANSWER_CLOCKS,
        fulfil="apps.privacy.services.rectification.fulfil_rectification",
        details="apps.privacy.services.rectification.clean_rectification"),
    RequestKind(
        value="restriction", label="Restriction (GDPR Art. 18)",
        portal_label=_("Stop using my data, but keep it"),
        portal_hint=_("Your data is kept but not used for anything (GDPR Art. 18)."),
        clocks=ANSWER_CLOCKS, fulfil=f"{_FLAGS}.apply_restriction"),
    RequestKind(
        value="objection", label="Objection (GDPR Art. 21)",
        portal_label=_("Stop personalizing for me"),
        portal_hint=_("Your data is no longer used to personalize what you see (GDPR Art. 21)."),
        clocks=ANSWER_CLOCKS, fulfil=f"{_FLAGS}.apply_objection"),
    RequestKind(
        value="opt_out", label="Opt-out of sale/sharing (CCPA)",
        portal_label=_("Do not sell or share my personal information"),
        portal_hint=_("Applied at once; no verification needed (CCPA)."),
        clocks=OPT_OUT_CLOCKS, fulfil=f"{_FLAGS}.apply_opt_out", needs_verification=False),
    RequestKind(
        value="limit_sensitive", label="Limit use of sensitive information (CCPA)",
        portal_label=_("Limit the use of my sensitive personal information"),
        portal_hint=_("Applied at once; no verification needed (CCPA)."),
        clocks=OPT_OUT_CLOCKS, fulfil=f"{_FLAGS}.apply_limit_sensitive",
        needs_verification=False),
)}


def all_kinds() -> Iterator[RequestKind]:
    return iter(tuple(TABLE.values()))


def find_kind(value: str) -> RequestKind | None:
    """The kind's policy, or None (for displaying a stored request, never for acting)."""
    return TABLE.get(value)


def get_kind(value: str) -> RequestKind:
    """The kind's policy; a kind not in the table is refused."""
    kind = TABLE.get(value)
    if kind is None:
        raise ApplicationError(f"Unknown kind '{value}'.", code="invalid_kind",
                               details={"allowed": list(TABLE)})
    return kind


def kind_choices() -> list[tuple[str, str]]:
    """``PrivacyRequest.kind`` choices (named by the migrations: keep this name)."""
    return [(k.value, k.label) for k in all_kinds()]


def kind_values(*, predicate: Callable[[RequestKind], bool] | None = None) -> list[str]:
    return [k.value for k in all_kinds() if predicate is None or predicate(k)]


#: Names for the kinds declared above (``PrivacyRequest.Kind.ERASURE``), for code that
#: means one particular kind. Built from the table: the table stays the one place.
Kind = models.TextChoices(  # type: ignore[misc]
    "Kind", [(k.value.upper(), (k.value, k.label)) for k in TABLE.values()])
