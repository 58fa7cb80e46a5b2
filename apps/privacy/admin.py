"""Privacy requests in the admin: the queue with days left, filters, bulk actions and a CSV
export; a detail page with the timeline and the actions (verify, approve, deny, extend,
reject, fulfil now, resend, assign, manual steps, internal notes); and the form staff use to
log a request received by mail or phone.

Who sees what: every member of the tenant sees the requests and their counts, none of which
identify anyone. Only owners and admins may act, and only they can open a request's
*subject data* (the decrypted contact, the pseudonym and what is held), which writes an
access entry to the audit trail. A member never reaches another tenant's request: the
queryset is scoped, so a foreign id is a 404 for every view and action.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.audit import services as audit
from apps.core.exceptions import ApplicationError
from apps.privacy.forms import LogRequestForm, ReasonForm
from apps.privacy.models import (
    DataExport,
    ErasureTombstone,
    FulfilmentJob,
    ManualStep,
    PortalSettings,
    PrivacyRequest,
)
from apps.privacy.selectors import (
    can_extend,
    count_requests,
    get_due_info,
    get_request_timeline,
    get_subject_data_summary,
    list_assignable_members,
    list_manual_steps,
    list_request_notes,
    with_open_steps,
)
from apps.privacy.services import (
    Contact,
    add_manual_step,
    add_request_note,
    approve_privacy_request,
    assign_privacy_request,
    deny_privacy_request,
    export_queue_csv,
    extend_privacy_request,
    file_privacy_request,
    fulfil_now,
    reject_privacy_request,
    resend,
    set_manual_step,
    verify_privacy_request,
)
from apps.privacy.services.deadlines import DEFAULT_AT_RISK_DAYS
from apps.privacy.services.notifications import request_contact
from apps.tenants.admin import ReadOnlyTenantScopedAdmin, TenantScopedAdmin, writable_tenant_ids
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize


class DueStateFilter(admin.SimpleListFilter):
    title = "due"
    parameter_name = "due"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "Overdue"), ("at_risk", f"At risk (≤ {DEFAULT_AT_RISK_DAYS} days)"),
                ("on_track", "On track"), ("closed", "Closed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        now = timezone.now()
        open_rows = queryset.filter(status__in=list(PrivacyRequest.OPEN_STATUSES))
        soon = now + timedelta(days=DEFAULT_AT_RISK_DAYS)
        value = self.value()
        if value == "overdue":
            return open_rows.filter(due_at__lt=now)
        if value == "at_risk":
            return open_rows.filter(due_at__gte=now, due_at__lte=soon)
        if value == "on_track":
            return open_rows.filter(due_at__gt=soon)
        if value == "closed":
            return queryset.filter(status__in=list(PrivacyRequest.CLOSED_STATUSES))
        return None


class RequiresInputFilter(admin.SimpleListFilter):
    title = "requires input"
    parameter_name = "requires_input"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Manual steps to tick"), ("awaiting", "Awaiting approval")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() == "yes":
            return queryset.filter(pending_steps__gt=0,
                                   status__in=list(PrivacyRequest.OPEN_STATUSES))
        if self.value() == "awaiting":
            return queryset.filter(status=PrivacyRequest.Status.AWAITING_APPROVAL)
        return None


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(TenantScopedAdmin):
    # Trimmed so that "days left" shows at 1280 px without scrolling sideways (issue 17):
    # regime, channel, received and the model update are filters and detail fields.
    list_display = ["short_reference", "kind", "status_display", "days_left", "due_date",
                    "assignee", "requires_input"]
    list_filter = ["status", RequiresInputFilter, DueStateFilter, "kind", "regime", "channel",
                   "assignee", "model_update_pending"]
    list_select_related = ["tenant", "assignee"]
    search_fields = ["reference"]
    ordering = ["due_at"]
    actions = ["approve_selected", "deny_selected", "assign_to_me"]
    change_form_template = "admin/privacy/privacyrequest/change_form.html"
    change_list_template = "admin/privacy/privacyrequest/change_list.html"
    fieldsets = [
        ("Request", {"fields": ["reference", "tenant", "kind", "regime", "channel", "status",
                                "verification_method", "logged_by", "assignee",
                                "approved_at", "approved_by"]}),
        ("Clock", {"fields": ["received_at", "due_at", "days_left", "due_state",
                              "original_due_at", "ack_due_at", "acknowledged_at",
                              "extended_at", "extension_reason"]}),
        ("Outcome", {"fields": ["verified_at", "started_at", "completed_at", "rejected_at",
                                "rejection_reason", "model_update", "result_display",
                                "erasure_check_display", "last_error", "contact_wiped_at"]}),
        ("Timeline", {"fields": ["timeline"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return with_open_steps(super().get_queryset(request))

    # --- list columns ------------------------------------------------------------------------

    @admin.display(description="reference", ordering="reference")
    def short_reference(self, obj: PrivacyRequest) -> str:
        return obj.reference[:8]

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: PrivacyRequest) -> str:
        if obj.status == PrivacyRequest.Status.AWAITING_APPROVAL:
            return format_html("<strong>{}</strong>", obj.get_status_display())
        return obj.get_status_display()

    @admin.display(description="due", ordering="due_at")
    def due_date(self, obj: PrivacyRequest) -> str:
        return f"{obj.due_at:%Y-%m-%d}"

    @admin.display(description="days left", ordering="due_at")
    def days_left(self, obj: PrivacyRequest) -> str:
        """Whole days left, with the due state beside it when it needs attention."""
        if not obj.is_open:
            return "—"
        info = get_due_info(obj)
        colours = {"overdue": "#a40e26", "at_risk": "#8a4600"}
        if info.state in colours:
            return format_html('<strong class="due-{}" style="color:{}">{} ({})</strong>',
                               info.state, colours[info.state], info.days_left,
                               info.state.replace("_", " "))
        return str(info.days_left)

    @admin.display(description="requires input", ordering="pending_steps")
    def requires_input(self, obj: PrivacyRequest) -> str:
        steps = getattr(obj, "pending_steps", 0)
        if steps and obj.is_open:
            return f"{steps} step{'s' if steps != 1 else ''}"
        return "—"

    @admin.display(description="due state")
    def due_state(self, obj: PrivacyRequest) -> str:
        state = get_due_info(obj).state
        colours = {"overdue": "#a40e26", "at_risk": "#8a4600"}
        if state in colours:
            return format_html('<strong style="color:{}">{}</strong>', colours[state],
                               state.replace("_", " "))
        return state.replace("_", " ")

    @admin.display(description="extended", boolean=True)
    def extended(self, obj: PrivacyRequest) -> bool:
        return obj.is_extended

    @admin.display(description="model update")
    def model_update(self, obj: PrivacyRequest) -> str:
        """An erasure receipt's model section (apps.privacy.services.receipts)."""
        section = ((obj.result or {}).get("receipt") or {}).get("model") or {}
        if obj.model_update_pending:
            return format_html('<strong style="color:#8a4600">pending</strong> ({})',
                               section.get("reason", "not checked yet").replace("_", " "))
        return str(section.get("status", "—"))

    @admin.display(description="result")
    def result_display(self, obj: PrivacyRequest) -> str:
        return _json_block(obj.result)

    @admin.display(description="erasure verification")
    def erasure_check_display(self, obj: PrivacyRequest) -> str:
        return _json_block(obj.erasure_check)

    @admin.display(description="timeline")
    def timeline(self, obj: PrivacyRequest) -> str:
        rows = get_request_timeline(privacy_request=obj)
        if not rows:
            return "—"
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            ((r.at.strftime("%Y-%m-%d %H:%M:%S"), r.action, r.actor,
              ", ".join(f"{k}={v}" for k, v in r.details.items())) for r in rows))
        return format_html("<table><thead><tr><th>when (UTC)</th><th>what</th><th>who</th>"
                           "<th>details</th></tr></thead><tbody>{}</tbody></table>", body)

    # --- permissions -------------------------------------------------------------------------

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # request records are proof; housekeeping deletes them after 24 months

    def _writer(self, request: HttpRequest, obj: PrivacyRequest) -> bool:
        return request.user.is_superuser or obj.tenant_id in writable_tenant_ids(request)

    def _get(self, request: HttpRequest, object_id: str) -> PrivacyRequest:
        obj = self.get_object(request, object_id)  # scoped: another tenant's is None
        if obj is None:
            raise Http404
        return obj

    # --- pages -------------------------------------------------------------------------------

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/subject-data/", wrap(self.subject_data_view),
                 name="privacy_privacyrequest_subject_data"),
            path("<path:object_id>/act/<str:action>/", wrap(self.action_view),
                 name="privacy_privacyrequest_act"),
            path("export.csv", wrap(self.export_view), name="privacy_privacyrequest_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context is not None and "cl" in context:
            context["request_counts"] = count_requests(
                queryset=context["cl"].queryset.order_by())
        return response

    def changeform_view(self, request: HttpRequest, object_id: str | None = None,
                        form_url: str = "", extra_context: Any = None) -> Any:
        extra = dict(extra_context or {})
        if object_id is not None:
            obj = self.get_object(request, object_id)
            if obj is not None:
                steps = list(list_manual_steps(privacy_request=obj))
                extra.update({
                    "show_save": False, "show_save_and_continue": False,
                    "show_save_and_add_another": False, "show_delete": False,
                    "privacy_request": obj, "can_act": self._writer(request, obj),
                    "reason_form": ReasonForm(),
                    "can_extend": can_extend(obj),
                    "manual_steps": steps,
                    "open_steps_count": sum(1 for step in steps if not step.is_done),
                    "steps_editable": obj.status in {
                        PrivacyRequest.Status.RECEIVED, PrivacyRequest.Status.VERIFYING,
                        PrivacyRequest.Status.AWAITING_APPROVAL},
                    "notes": list(list_request_notes(privacy_request=obj)),
                    "members": list(list_assignable_members(tenant=obj.tenant_id)),
                })
        return super().changeform_view(request, object_id, form_url, extra)

    def add_view(self, request: HttpRequest, form_url: str = "",
                 extra_context: Any = None) -> HttpResponse:
        """Log a request received by mail or phone (the only way to add one here)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        tenants = (Tenant.objects.all() if request.user.is_superuser
                   else Tenant.objects.filter(pk__in=writable_tenant_ids(request)))
        form = LogRequestForm(request.POST or None)
        form.fields["tenant"].queryset = tenants
        if tenants.count() == 1 and not request.POST:
            form.fields["tenant"].initial = tenants.first()
            form.fields["regime"].initial = tenants.first().default_regime
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            tenant = data["tenant"]
            try:
                filing = file_privacy_request(
                    tenant=tenant, kind=data["kind"], regime=data["regime"],
                    channel=data["channel"],
                    subject_key=pseudonymize(tenant, data["identifier"].strip()),
                    contact=Contact(identifier=data["identifier"].strip(),
                                    email=data.get("contact_email") or ""),
                    received_at=data["received_at"],
                    verification=(PrivacyRequest.Verification.STAFF
                                  if data["identity_verified"] else None),
                    acknowledged=data["acknowledged"], actor=request.user,
                    logged_by=request.user, origin=request.build_absolute_uri("/").rstrip("/"))
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                pr = filing.request
                if filing.duplicate:
                    messages.warning(request, f"This subject already has an open {pr.kind} "
                                              f"request: {pr}. No second request was made.")
                else:
                    messages.success(request, f"{pr} logged; due {pr.due_at:%Y-%m-%d}.")
                return HttpResponseRedirect(
                    reverse("admin:privacy_privacyrequest_change", args=[pr.pk]))
        context = {**self.admin_site.each_context(request), "form": form,
                   "opts": self.model._meta, "title": "Log a request received by mail or phone"}
        return TemplateResponse(request, "admin/privacy/privacyrequest/log_request.html",
                                context)

    def subject_data_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Who the request is about, and what is held: owners and admins only, audited."""
        obj = self._get(request, object_id)
        if not self._writer(request, obj):
            raise PermissionDenied
        contact = request_contact(obj)
        summary = get_subject_data_summary(tenant=obj.tenant, subject_key=obj.subject_key)
        # Pointing at the request, not the subject: this entry must not revive an erased
        # subject's audit token.
        audit.record(obj.tenant, "privacy.subject_data_viewed", request.user, obj,
                     {"reference": obj.reference[:8], "contact_shown": contact is not None})
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "privacy_request": obj, "contact": contact, "summary": summary,
                   "title": f"Subject data of {obj}"}
        return render(request, "admin/privacy/privacyrequest/subject_data.html", context)

    def action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        obj = self._get(request, object_id)
        if request.method != "POST":
            return HttpResponseRedirect(
                reverse("admin:privacy_privacyrequest_change", args=[obj.pk]))
        if not self._writer(request, obj):
            raise PermissionDenied
        reason = ReasonForm(request.POST)
        origin = request.build_absolute_uri("/").rstrip("/")
        try:
            if action == "verify":
                verify_privacy_request(privacy_request=obj,
                                       method=PrivacyRequest.Verification.STAFF,
                                       actor=request.user)
                done = "Verified; fulfilment started."
            elif action == "extend":
                extend_privacy_request(privacy_request=obj,
                                       reason=_reason(reason, "An extension"),
                                       actor=request.user)
                done = "Extended; the subject was told why."
            elif action == "reject":
                reject_privacy_request(privacy_request=obj,
                                       reason=_reason(reason, "A rejection"),
                                       actor=request.user)
                done = "Rejected; the subject was told why and where to complain."
            elif action == "approve":
                approve_privacy_request(privacy_request=obj, actor=request.user)
                done = "Approved; fulfilment started."
            elif action == "deny":
                deny_privacy_request(privacy_request=obj, reason=_reason(reason, "A denial"),
                                     actor=request.user)
                done = "Denied; the subject was told why and where to complain."
            elif action == "assign":
                assignee = self._member(obj, request.POST.get("assignee", ""))
                assign_privacy_request(privacy_request=obj, assignee=assignee,
                                       actor=request.user)
                done = f"Assigned to {assignee.get_username()}." if assignee else "Unassigned."
            elif action == "note":
                add_request_note(privacy_request=obj, text=request.POST.get("text", ""),
                                 author=request.user)
                done = "Note added."
            elif action == "add-step":
                add_manual_step(privacy_request=obj, label=request.POST.get("label", ""),
                                actor=request.user)
                done = "Step added; the request waits for approval until it is ticked."
            elif action == "step":
                step = (ManualStep.objects.for_tenant(obj.tenant_id)
                        .filter(privacy_request=obj, pk=_int(request.POST.get("step"))).first())
                if step is None:
                    raise Http404
                done_flag = request.POST.get("done") == "1"
                set_manual_step(step=step, done=done_flag, actor=request.user)
                done = f"Step {'ticked' if done_flag else 'reopened'}: {step.label}."
            elif action == "fulfil":
                fulfil_now(privacy_request=obj, actor=request.user)
                done = "Fulfilment started."
            elif action == "resend":
                sent = resend(privacy_request=obj, actor=request.user, origin=origin)
                done = f"Sent again: {sent}."
            else:
                raise Http404
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, done)
        return HttpResponseRedirect(reverse("admin:privacy_privacyrequest_change", args=[obj.pk]))


    def _member(self, obj: PrivacyRequest, value: str) -> Any:
        """The user picked for assignment: a member of the request's tenant, or None."""
        if not value:
            return None
        membership = list_assignable_members(tenant=obj.tenant_id).filter(
            user_id=_int(value)).first()
        if membership is None:
            raise ApplicationError("Only a member of the tenant can be assigned.")
        return membership.user

    # --- the queue: CSV export and bulk actions ---------------------------------------------

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The queue as the member sees it (their tenants, the filters in the URL) as CSV:
        no pseudonym, contact or result; audited per tenant."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        body = export_queue_csv(queryset=changelist.get_queryset(request), actor=request.user,
                                filters=request.GET.dict())
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="privacy-requests-{stamp}.csv"'
        response["Cache-Control"] = "no-store"
        return response

    def _bulk(self, request: HttpRequest, queryset: QuerySet, verb: str, act: Any) -> None:
        done, failed = 0, []
        for obj in queryset:
            if not self._writer(request, obj):
                failed.append(f"{obj}: read-only for you")
                continue
            try:
                act(obj)
            except ApplicationError as exc:
                failed.append(f"{obj}: {exc.message}")
            else:
                done += 1
        if done:
            messages.success(request, f"{verb} {done} request{'s' if done != 1 else ''}.")
        for failure in failed[:20]:
            messages.warning(request, failure)

    @admin.action(description="Approve selected requests", permissions=["change"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._bulk(request, queryset, "Approved",
                   lambda obj: approve_privacy_request(privacy_request=obj, actor=request.user))

    @admin.action(description="Deny selected requests (asks for the reason)",
                  permissions=["change"])
    def deny_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = ReasonForm(request.POST if "deny_reason_given" in request.POST else None)
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"]
            self._bulk(request, queryset, "Denied", lambda obj: deny_privacy_request(
                privacy_request=obj, reason=reason, actor=request.user))
            return None
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "Deny the selected requests", "form": form,
                   "requests": list(queryset),
                   "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/privacy/privacyrequest/deny_selected.html",
                                context)

    @admin.action(description="Assign selected requests to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._bulk(request, queryset, "Assigned", lambda obj: assign_privacy_request(
            privacy_request=obj, assignee=request.user, actor=request.user))


def _reason(form: ReasonForm, what: str) -> str:
    if not form.is_valid():
        raise ApplicationError(f"{what} needs a reason.")
    return form.cleaned_data["reason"]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _json_block(value: Any) -> str:
    """A receipt, result or erasure check as readable tables (never raw JSON)."""
    from apps.core.display import facts_table

    return facts_table(value) if value else "—"


@admin.register(FulfilmentJob)
class FulfilmentJobAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["pk", "privacy_request", "status", "attempts", "last_step", "enqueued_at",
                    "heartbeat_at", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["privacy_request", "tenant"]
    fields = ["privacy_request", "status", "attempts", "max_attempts", "enqueued_at",
              "started_at", "heartbeat_at", "worker", "finished_at", "progress", "last_error"]
    readonly_fields = fields

    @admin.display(description="last step")
    def last_step(self, obj: FulfilmentJob) -> str:
        return str((obj.progress or {}).get("last_step", "—"))


@admin.register(DataExport)
class DataExportAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["pk", "privacy_request", "size", "created_at", "expires_at",
                    "downloaded_at", "deleted_at"]
    list_select_related = ["privacy_request", "tenant"]
    fields = ["privacy_request", "size", "sha256", "link_expires_at", "expires_at",
              "downloaded_at", "deleted_at"]
    readonly_fields = fields


@admin.register(ErasureTombstone)
class ErasureTombstoneAdmin(ReadOnlyTenantScopedAdmin):
    """Shows that and when subjects were erased, never whom (no pseudonym on screen)."""

    list_display = ["pk", "erased_at", "privacy_request"]
    list_select_related = ["privacy_request", "tenant"]
    fields = ["erased_at", "privacy_request"]
    readonly_fields = fields


@admin.register(PortalSettings)
class PortalSettingsAdmin(ReadOnlyTenantScopedAdmin):
    """The signing secret is never shown here: ``manage.py privacy_signing_secret``."""

    list_display = ["tenant", "rotated_at"]
    fields = ["tenant", "rotated_at"]
    readonly_fields = fields
