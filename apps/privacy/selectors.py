"""Reads of the privacy app. Everything is scoped to one tenant (STYLE S4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db.models import Count, IntegerField, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.core.subject_data import retention_notice, subject_data_stores
from apps.privacy.i18n import portal_language, switcher_context
from apps.privacy.models import (
    FulfilmentJob,
    ManualStep,
    PortalSession,
    PrivacyRequest,
    RequestNote,
)
from apps.privacy.services.deadlines import days_left, due_state
from apps.privacy.services.requests import at_risk_days, extension_refusal
from apps.tenants.models import Membership, Tenant


def list_privacy_requests(*, tenant: Tenant | int) -> QuerySet[PrivacyRequest]:
    return PrivacyRequest.objects.for_tenant(tenant).order_by("due_at", "pk")


def get_privacy_request(*, tenant: Tenant | int, pk: Any) -> PrivacyRequest:
    """One request of the tenant; ``not_found`` for a missing or another tenant's one."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        pk = -1
    if not 0 < pk < 2**63:  # past a bigint the database would error, not answer "none"
        raise ApplicationError("Not found.", code="not_found", status_code=404)
    pr = (PrivacyRequest.objects.for_tenant(tenant).select_related("tenant")
          .filter(pk=pk).first())
    if pr is None:
        raise ApplicationError("Not found.", code="not_found", status_code=404)
    return pr


def get_request_by_reference(*, tenant: Tenant, reference: str) -> PrivacyRequest | None:
    if not reference or len(reference) > 32:
        return None
    return (PrivacyRequest.objects.for_tenant(tenant).select_related("tenant")
            .filter(reference=reference).first())


def with_open_steps(queryset: QuerySet[PrivacyRequest]) -> QuerySet[PrivacyRequest]:
    """The requests with ``pending_steps``: how many manual steps are unticked ("requires
    input"). A subquery, not a join: the queue's counts and filters keep their shape."""
    # ``all_tenants``: correlated to the outer (scoped) request row by its pk.
    steps = (ManualStep.all_tenants.filter(privacy_request=OuterRef("pk"), done_at__isnull=True)
             .order_by().values("privacy_request").annotate(n=Count("pk")).values("n"))
    return queryset.annotate(
        pending_steps=Coalesce(Subquery(steps, output_field=IntegerField()), 0))


def can_extend(privacy_request: PrivacyRequest, now: datetime | None = None) -> bool:
    """Whether the one extension is still allowed (what "Extend" offers)."""
    return extension_refusal(privacy_request, now or timezone.now()) is None


def list_manual_steps(*, privacy_request: PrivacyRequest) -> QuerySet[ManualStep]:
    return (ManualStep.objects.for_tenant(privacy_request.tenant_id)
            .filter(privacy_request=privacy_request).select_related("done_by")
            .order_by("position", "pk"))


def list_request_notes(*, privacy_request: PrivacyRequest) -> QuerySet[RequestNote]:
    return (RequestNote.objects.for_tenant(privacy_request.tenant_id)
            .filter(privacy_request=privacy_request).select_related("author")
            .order_by("created_at", "pk"))


def list_assignable_members(*, tenant: Tenant | int) -> QuerySet[Membership]:
    """Active members of the tenant, who can be assigned its requests."""
    return (Membership.objects.for_tenant(tenant).filter(user__is_active=True)
            .select_related("user").order_by("user__username"))


@dataclass(frozen=True)
class DueInfo:
    due_at: datetime
    days_left: int
    state: str  # closed | overdue | at_risk | on_track


def get_due_info(privacy_request: PrivacyRequest, now: datetime | None = None) -> DueInfo:
    now = now or timezone.now()
    pr = privacy_request
    return DueInfo(pr.due_at, days_left(pr.due_at, now),
                   due_state(due_at=pr.due_at, now=now, is_open=pr.is_open,
                             at_risk_days=at_risk_days(pr.tenant)))


def count_requests(*, queryset: QuerySet[PrivacyRequest]) -> dict[str, Any]:
    """Counts by status and kind, and open ones by due state (for analysts, who see counts,
    not identities)."""
    now = timezone.now()
    by_status = dict(queryset.values_list("status").annotate(n=Count("pk")).order_by())
    by_kind = dict(queryset.values_list("kind").annotate(n=Count("pk")).order_by())
    open_rows = queryset.filter(status__in=list(PrivacyRequest.OPEN_STATUSES))
    overdue = open_rows.filter(due_at__lt=now).count()
    at_risk = open_rows.filter(due_at__gte=now, due_at__lte=now + timedelta(days=7)).count()
    return {"by_status": by_status, "by_kind": by_kind, "overdue": overdue,
            "at_risk": at_risk, "total": sum(by_status.values())}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    action: str
    actor: str
    details: dict[str, Any]


def get_request_timeline(*, privacy_request: PrivacyRequest) -> list[TimelineEntry]:
    """Every audit entry about the request, oldest first, plus each fulfilment job step."""
    from apps.audit.selectors import list_audit_events_about

    pr = privacy_request
    entries = [
        TimelineEntry(e.occurred_at, e.action, e.actor_type + (f" #{e.actor_id}"
                                                               if e.actor_id else ""),
                      e.details)
        for e in list_audit_events_about(tenant=pr.tenant_id, target=pr)
    ]
    for job in FulfilmentJob.objects.for_tenant(pr.tenant_id).filter(privacy_request=pr):
        entries.append(TimelineEntry(job.created_at, f"job {job.pk}: {job.status}", "system",
                                     {"attempts": job.attempts,
                                      "error": job.last_error[:200] or None}))
        for name, step in (job.progress or {}).get("steps", {}).items():
            at = step.get("at")
            if at:
                entries.append(TimelineEntry(
                    datetime.fromisoformat(at), f"job {job.pk} step {name}", "system",
                    {k: v for k, v in step.items() if k in {"count", "category"}}))
    return sorted(entries, key=lambda e: e.at)


@dataclass(frozen=True)
class CategorySummary:
    handler: str
    category: str
    count: int | None  # None: not countable as rows (e.g. files, model factors)
    retention: str
    delete_by: datetime | None  # when the oldest row reaches the end of its period
    #: A store outside the tables that lists what it holds (``SubjectDataStore.held``).
    entries: tuple[str, ...] = ()


def get_subject_data_summary(*, tenant: Tenant, subject_key: str) -> list[CategorySummary]:
    """What is held about one subject: per store, rows and retention (for "my data" and
    the admin). Counts rows of each store's models, and lists what a store outside the
    tables says it holds (its ``held``, which its export reads too); nothing is exported."""
    summary = []
    for store in subject_data_stores():
        total: int | None = None
        oldest = None
        for label in store.models:
            model = apps.get_model(label)
            rows = model.objects.for_tenant(tenant).filter(**{store.subject_field: subject_key})
            stats = rows.aggregate(n=Count("pk"), first=Min("created_at")) if hasattr(
                model, "created_at") else rows.aggregate(n=Count("pk"))
            total = (total or 0) + stats["n"]
            first = stats.get("first")
            if first is not None and (oldest is None or first < oldest):
                oldest = first
        entries: tuple[str, ...] = ()
        if store.held is not None:
            entries = tuple(store.held(tenant, subject_key))
            total = (total or 0) + len(entries)
        notice = retention_notice(store, tenant)
        delete_by = (oldest + timedelta(days=notice.days)
                     if notice.days and oldest is not None else None)
        summary.append(CategorySummary(store.name, store.category, total, notice.text,
                                       delete_by, entries))
    return summary


def list_subject_requests(*, tenant: Tenant, subject_key: str) -> QuerySet[PrivacyRequest]:
    return (PrivacyRequest.objects.for_tenant(tenant).filter(subject_key=subject_key)
            .order_by("-received_at"))


def list_privacy_activity(*, tenant: Tenant, since: datetime) -> list[QuerySet[Any]]:
    """What shows a subject active since ``since`` here (rows keyed by ``subject_key``): a
    privacy-portal visit, or a request received since then or still open (retention never
    removes a subject in the middle of a request)."""
    return [
        PortalSession.objects.for_tenant(tenant).filter(created_at__gte=since),
        PrivacyRequest.objects.for_tenant(tenant).filter(
            Q(received_at__gte=since) | Q(status__in=list(PrivacyRequest.OPEN_STATUSES))),
    ]


#: The due-date buckets of open requests on the console, in order.
DUE_BUCKETS = ("overdue", "at_risk", "within_14_days", "within_30_days", "later")


def get_request_figures(*, tenant: Tenant, now: datetime | None = None) -> dict[str, Any]:
    """Requests by status, and open ones by due date (overdue, at risk per the tenant's
    ``privacy_at_risk_days``, then on track within 14 / 30 days or later): two queries."""
    now = now or timezone.now()
    requests = list_privacy_requests(tenant=tenant)
    by_status = dict(requests.values_list("status").annotate(n=Count("pk")).order_by())
    risk = now + timedelta(days=at_risk_days(tenant))
    on_track = Q(due_at__gt=risk)
    due = requests.filter(status__in=list(PrivacyRequest.OPEN_STATUSES)).aggregate(
        overdue=Count("pk", filter=Q(due_at__lt=now)),
        at_risk=Count("pk", filter=Q(due_at__gte=now, due_at__lte=risk)),
        within_14_days=Count("pk", filter=on_track & Q(due_at__lte=now + timedelta(days=14))),
        within_30_days=Count("pk", filter=on_track & Q(due_at__gt=now + timedelta(days=14),
                                                       due_at__lte=now + timedelta(days=30))),
        later=Count("pk", filter=on_track & Q(due_at__gt=now + timedelta(days=30))),
    )
    return {"by_status": by_status, "by_due": {b: due[b] for b in DUE_BUCKETS}}


def list_running_fulfilment(*, tenant: Tenant, limit: int = 10) -> list[dict[str, Any]]:
    """Unfinished fulfilment jobs (erasures, exports...) with their progress: handler steps
    done of all (one query)."""
    total = 1 + len(subject_data_stores())  # "describe", then one step per store
    out = []
    for job in (FulfilmentJob.objects.for_tenant(tenant)
                .filter(status__in=[FulfilmentJob.Status.PENDING, FulfilmentJob.Status.RUNNING])
                .select_related("privacy_request").order_by("pk")[:limit]):
        steps = (job.progress or {}).get("steps") or {}
        kind = job.privacy_request.get_kind_display()
        out.append({"kind": job.privacy_request.kind, "id": job.pk, "status": job.status,
                    "label": f"{kind} {job.privacy_request.reference[:8]}",
                    "done": len(steps), "total": max(total, len(steps)),
                    "detail": str((job.progress or {}).get("last_step", "")),
                    "url_name": "admin:privacy_fulfilmentjob_change"})
    return out


def get_language_switcher(request: Any, tenant: Tenant | None) -> dict[str, Any]:
    """The context of the page frame's language switcher (``privacy/portal/base.html``),
    for the other apps' public pages that use that frame."""
    return switcher_context(request, tenant)


def get_portal_language(request: Any, tenant: Tenant | None) -> str:
    """The language of a subject-facing page for this request, by the portal's rule
    (:func:`apps.privacy.i18n.portal_language`: switcher cookie, ``Accept-Language``, the
    tenant's ``portal_default_language``, English). For the other apps' public pages."""
    return portal_language(request, tenant)
