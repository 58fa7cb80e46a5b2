"""Admin: model versions (metrics, NDCG chart, activate/retire, deletion only of versions
nothing needs), the recommendation inspector, training runs ("Train now", live progress,
logs), the privacy-budget ledger and the training quarantine (release). All tenant-scoped
(apps/tenants/admin.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from apps.core.exceptions import ApplicationError
from apps.modeling.models import (
    ModelVersion,
    PrivacyBudgetEntry,
    SubjectQuarantine,
    TrainingRun,
)
from apps.modeling.selectors import describe_decision
from apps.tenants.admin import (
    ReadOnlyTenantScopedAdmin,
    SubjectDataAdmin,
    TenantScopedAdmin,
    member_roles,
    writable_tenant_ids,
)
from apps.tenants.models import Tenant
from apps.tenants.services import SUBJECT_ID_MAX_LENGTH

CHART_VERSIONS = 30


def _xy(n: int, value: float | None, count: int, top: float,
        width: int = 600, height: int = 160, pad: int = 24) -> str:
    x = pad + (width - 2 * pad) * (n / max(count - 1, 1))
    y = height - pad - (height - 2 * pad) * ((value or 0) / top)
    return f"{x:.1f},{y:.1f}"


def _ndcg_series(queryset: QuerySet[ModelVersion]) -> list[dict[str, Any]]:
    """Per tenant shown, the NDCG@10 of its last versions (model and popularity)."""
    series: dict[int, dict[str, Any]] = {}
    rows = queryset.order_by("tenant_id", "-number").values_list(
        "tenant_id", "tenant__slug", "number", "metrics", "status")
    for tenant_id, slug, number, metrics, status in rows:
        entry = series.setdefault(tenant_id, {"tenant": slug, "points": []})
        if len(entry["points"]) < CHART_VERSIONS:
            entry["points"].append({
                "number": number, "status": status,
                "ndcg": (metrics.get("model") or {}).get("ndcg@10"),
                "popularity": (metrics.get("popularity") or {}).get("ndcg@10")})
    charts = []
    width, height = 600, 160
    for entry in series.values():
        points = list(reversed(entry["points"]))
        top = max([p["ndcg"] or 0 for p in points] + [p["popularity"] or 0 for p in points]
                  + [0.01])
        count = len(points)
        charts.append({
            "tenant": entry["tenant"], "width": width, "height": height, "top": top,
            "model": " ".join(_xy(n, p["ndcg"], count, top) for n, p in enumerate(points)),
            "popularity": " ".join(_xy(n, p["popularity"], count, top)
                                   for n, p in enumerate(points)),
            "dots": [{"xy": _xy(n, p["ndcg"], count, top).split(","), "label":
                      f"v{p['number']} {p['status']}: {p['ndcg'] or 0:.4f}"}
                     for n, p in enumerate(points)],
        })
    return charts


def _indented_json(field: str, description: str) -> Callable[[Any, ModelVersion], str]:
    """A read-only admin field that shows the JSON field ``field`` of a version as tables."""

    @admin.display(description=description)
    def show(model_admin: Any, obj: ModelVersion) -> str:
        from apps.core.display import facts_table

        return facts_table(getattr(obj, field))

    return show


@admin.register(ModelVersion)
class ModelVersionAdmin(TenantScopedAdmin):
    # The artifact and the activation note are on the detail page (fits 1280 px).
    list_display = ["number", "tenant", "algorithm", "status", "ndcg_at_10",
                    "popularity_ndcg_at_10", "subjects", "erased_subjects", "created_at"]
    list_filter = ["status", "algorithm"]
    list_select_related = ["tenant"]
    ordering = ["tenant", "-number"]
    actions = ["activate_selected", "retire_selected"]
    change_list_template = "admin/modeling/modelversion/change_list.html"
    readonly_fields = ["tenant", "number", "algorithm", "status", "pretty_params",
                       "pretty_metrics", "pretty_search", "pretty_stats", "pretty_timings",
                       "consent_snapshot_at", "artifact_path", "artifact_sha256",
                       "artifact_bytes", "artifact_destroyed_at", "revision",
                       "erased_subjects", "activation_note", "champion_challenger",
                       "pretty_decision", "activated_at", "retired_at", "created_at"]
    exclude = ["params", "metrics", "search", "data_stats", "timings", "activation_decision"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # versions come from training only

    @admin.display(description="NDCG@10")
    def ndcg_at_10(self, obj: ModelVersion) -> str:
        return "-" if obj.ndcg is None else f"{obj.ndcg:.4f}"

    @admin.display(description="popularity NDCG@10")
    def popularity_ndcg_at_10(self, obj: ModelVersion) -> str:
        value = (obj.metrics.get("popularity") or {}).get("ndcg@10")
        return "-" if value is None else f"{value:.4f}"

    @admin.display(description="subjects")
    def subjects(self, obj: ModelVersion) -> Any:
        return obj.data_stats.get("subjects_consented")

    @admin.display(description="artifact", boolean=True)
    def artifact(self, obj: ModelVersion) -> bool:
        return obj.has_artifact

    @admin.display(description="champion / challenger")
    def champion_challenger(self, obj: ModelVersion) -> str:
        return describe_decision(obj.activation_decision) or "-"

    pretty_decision = _indented_json("activation_decision", "activation decision")
    pretty_params = _indented_json("params", "parameters")
    pretty_metrics = _indented_json("metrics", "metrics (hold-out)")
    pretty_search = _indented_json("search", "candidates searched")
    pretty_stats = _indented_json("data_stats", "data statistics")
    pretty_timings = _indented_json("timings", "timings (s)")

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        extra_context = {**(extra_context or {}),
                         "ndcg_charts": _ndcg_series(self.get_queryset(request))}
        return super().changelist_view(request, extra_context)

    def _each(self, request: HttpRequest, queryset: QuerySet[ModelVersion], verb: str) -> None:
        from apps.modeling.services import activate_version, retire_version

        for version in queryset.select_related("tenant"):
            if not self._may_write(request, version):
                self.message_user(request, f"v{version.number}: not allowed", messages.ERROR)
                continue
            try:
                if verb == "activate":
                    activate_version(tenant=version.tenant, version=version, actor=request.user,
                                     note=f"activated by hand ({request.user})")
                else:
                    retire_version(tenant=version.tenant, version=version, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"v{version.number}: {exc.message}",
                                  messages.ERROR)
            else:
                self.message_user(request, f"v{version.number}: {verb}d")

    # --- Deletion: refused for a version in service or one an unfinished erasure needs.

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, each checked (delete_view)
        return actions

    def delete_view(self, request: HttpRequest, object_id: str,
                    extra_context: Any = None) -> HttpResponse:
        from apps.modeling.services import version_delete_refusal

        version = self.get_object(request, unquote(object_id))
        if version is not None and self.has_delete_permission(request, version):
            reason = version_delete_refusal(tenant=version.tenant, version=version)
            if reason:
                self.message_user(request, reason, messages.ERROR)
                return redirect(reverse("admin:modeling_modelversion_change",
                                        args=[version.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: ModelVersion) -> None:
        from apps.modeling.services import delete_version

        delete_version(tenant=obj.tenant, version=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset.select_related("tenant"):
            self.delete_model(request, version)

    # --- The recommendation inspector ---------------------------------------------------

    def get_urls(self) -> list[Any]:
        inspect = self.admin_site.admin_view(self.inspector_view)
        return [path("inspect/", inspect, name="modeling_modelversion_inspect"),
                *super().get_urls()]

    @method_decorator(sensitive_post_parameters("subject"))
    def inspector_view(self, request: HttpRequest) -> HttpResponse:
        """Enter a subject's id, see their consent, level, recommendations with
        explanations and the model version. POST only carries the id (never in a URL or
        an access log); it is pseudonymized on arrival and the access is audited."""
        from apps.core.exceptions import ApplicationError
        from apps.modeling.services.inspector import inspect_subject

        if not self.has_view_permission(request):
            raise PermissionDenied
        tenants = _member_tenants(request, write=False)
        form = InspectorForm(request.POST or None, tenants=tenants)
        inspection = inspected_tenant = None
        if request.method == "POST" and form.is_valid():
            tenant = form.cleaned_data["tenant"]
            try:
                inspection = inspect_subject(tenant=tenant,
                                             external_id=form.cleaned_data["subject"],
                                             actor=request.user)
            except ApplicationError as exc:
                form.add_error("subject", exc.message)
            else:
                inspected_tenant = tenant
        context = {**self.admin_site.each_context(request), "title": "Recommendation inspector",
                   "opts": self.model._meta, "form": form, "inspection": inspection,
                   "inspected_tenant": inspected_tenant}
        response = TemplateResponse(request, "admin/modeling/inspector.html", context)
        response["Cache-Control"] = "no-store"  # subject data: no copy in the browser cache
        return response

    @admin.action(description="Activate the selected version (one per tenant)")
    def activate_selected(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        self._each(request, queryset, "activate")

    @admin.action(description="Retire the selected versions")
    def retire_selected(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        self._each(request, queryset, "retire")


class InspectorForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), empty_label=None)
    subject = forms.CharField(
        label="Subject id", max_length=SUBJECT_ID_MAX_LENGTH, strip=False,
        help_text="The id your site sends with its events. It is pseudonymized at once and "
                  "never stored; the look-up is recorded in the audit trail.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))

    def __init__(self, *args: Any, tenants: QuerySet[Tenant], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["tenant"]
        field.queryset = tenants
        if len(tenants) == 1:
            field.initial = tenants[0].pk
            field.widget = forms.HiddenInput()


class TrainNowForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), empty_label=None)

    def __init__(self, *args: Any, tenants: QuerySet[Tenant], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants
        if len(tenants) == 1:
            self.fields["tenant"].initial = tenants[0].pk
            self.fields["tenant"].widget = forms.HiddenInput()


def _member_tenants(request: HttpRequest, *, write: bool) -> QuerySet[Tenant]:
    """The tenants the user may act for: every one for a superuser, else their
    memberships' (with a writing role when ``write``)."""
    if request.user.is_superuser:
        return Tenant.objects.filter(is_active=True)
    ids = writable_tenant_ids(request) if write else set(member_roles(request))
    return Tenant.objects.filter(pk__in=sorted(ids), is_active=True)


def _progress(run: TrainingRun) -> dict[str, Any]:
    """A run's progress as the run page polls it (``<id>/progress/``)."""
    progress = run.progress or {}
    percent = progress.get("percent")
    if run.status == TrainingRun.Status.SUCCEEDED:
        percent = 100.0
    return {
        "id": run.pk, "status": run.status, "finished": run.is_finished,
        "percent": float(percent or 0.0), "stage": str(progress.get("stage", ""))[:80],
        "candidate": progress.get("candidate"), "iteration": progress.get("iteration"),
        "iterations": progress.get("iterations"),
        "model_version": progress.get("model_version"), "attempts": run.attempts,
        "last_error": run.last_error[:300],
    }


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyTenantScopedAdmin):
    """Training runs. "Train now" (owners and admins) starts a durable run; its page shows
    the progress the training records, live (it polls ``<id>/progress/``)."""

    change_list_template = "admin/modeling/trainingrun/change_list.html"
    change_form_template = "admin/modeling/trainingrun/change_form.html"
    list_display = ["id", "tenant", "reason", "status", "progress_display", "attempts",
                    "model_version", "created_at", "finished_at", "last_error"]
    list_filter = ["status", "reason"]
    list_select_related = ["tenant", "model_version"]
    readonly_fields = ["tenant", "reason", "status", "attempts", "max_attempts", "progress",
                       "log_display", "last_error", "model_version", "enqueued_at",
                       "started_at", "heartbeat_at", "worker", "finished_at", "created_at"]
    exclude = ["log"]

    def get_urls(self) -> list[Any]:
        site = self.admin_site
        return [
            path("train-now/", site.admin_view(self.train_now_view),
                 name="modeling_trainingrun_train_now"),
            path("<int:run_id>/progress/", site.admin_view(self.progress_view),
                 name="modeling_trainingrun_progress"),
            *super().get_urls(),
        ]

    def may_train(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(writable_tenant_ids(request))

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        extra_context = {**(extra_context or {}), "may_train": self.may_train(request)}
        return super().changelist_view(request, extra_context)

    def train_now_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the confirmation (and the tenant, for a member of several); POST: a
        manual training run (the pending one if there is one), then its page."""
        from apps.modeling.services import request_training

        if not self.may_train(request):
            raise PermissionDenied
        form = TrainNowForm(request.POST or None, tenants=_member_tenants(request, write=True))
        if request.method == "POST" and form.is_valid():
            run = request_training(tenant=form.cleaned_data["tenant"],
                                   reason=TrainingRun.Reason.MANUAL)
            self.message_user(request, f"Training run {run.pk} started.", messages.SUCCESS)
            return redirect(reverse("admin:modeling_trainingrun_change", args=[run.pk]))
        context = {**self.admin_site.each_context(request), "title": "Train now",
                   "opts": self.model._meta, "form": form}
        return TemplateResponse(request, "admin/modeling/trainingrun/train_now.html", context)

    def progress_view(self, request: HttpRequest, run_id: int) -> JsonResponse:
        """The run's progress as JSON, for its page to poll. Scoped like the admin's
        lists: another tenant's run is the same 404 as a missing one."""
        from apps.core.exceptions import error_body

        run = self.get_queryset(request).filter(pk=run_id).first()
        if run is None or not self.has_view_permission(request, run):
            return JsonResponse(error_body("not_found", "Not found."), status=404)
        response = JsonResponse(_progress(run))
        response["Cache-Control"] = "no-store"
        return response

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: Any = None) -> Any:
        run = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}),
                         "run_progress": _progress(run) if run is not None else None}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="progress")
    def progress_display(self, obj: TrainingRun) -> str:
        progress = obj.progress or {}
        if "iteration" in progress and obj.status == TrainingRun.Status.RUNNING:
            return (f"{progress.get('candidate', '')} iteration "
                    f"{progress['iteration']}/{progress.get('iterations')}")
        return str(progress.get("stage", ""))

    @admin.display(description="log")
    def log_display(self, obj: TrainingRun) -> str:
        return format_html("<pre>{}</pre>", obj.log)


@admin.register(PrivacyBudgetEntry)
class PrivacyBudgetEntryAdmin(ReadOnlyTenantScopedAdmin):
    list_display = ["id", "tenant", "kind", "epsilon", "contribution_bound", "subjects",
                    "model_version", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["tenant", "model_version", "reuse_of"]
    exclude = ["released"]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        from django.db.models import Count, Q, Sum

        # All time (the budget's window is per tenant: docs/modeling.md); reuses spend 0.
        totals = list(self.get_queryset(request).values("tenant__slug").annotate(
            spent=Sum("epsilon"), releases=Count("id", filter=Q(reuse_of__isnull=True)),
            reuses=Count("id", filter=Q(reuse_of__isnull=False))).order_by("tenant__slug"))
        summary = "; ".join(f"{t['tenant__slug']}: ε spent {t['spent']:.3f} over "
                            f"{t['releases']} releases ({t['reuses']} reused)"
                            for t in totals)
        extra_context = {**(extra_context or {}), "title": f"Privacy budget ledger — {summary}"
                         if summary else "Privacy budget ledger"}
        return super().changelist_view(request, extra_context)


@admin.register(SubjectQuarantine)
class SubjectQuarantineAdmin(SubjectDataAdmin):
    """Subjects left out of training for anomalous activity, with the reason and the
    figures; read-only and access-audited like other subject data. Owners and admins
    release a quarantine with the action (through the service: audited)."""

    list_display = ["short_subject", "tenant", "reason", "events", "threshold", "detected_at",
                    "released_at"]
    list_filter = ["reason", ("released_at", admin.EmptyFieldListFilter)]
    list_select_related = ["tenant"]
    ordering = ["-detected_at", "-id"]
    readonly_fields = ["tenant", "subject_key", "reason", "figures", "detected_at",
                       "released_at", "created_at"]
    actions = ["release_selected"]

    @admin.display(description="Subject key", ordering="subject_key")
    def short_subject(self, record: SubjectQuarantine) -> str:
        return f"{record.subject_key[:12]}…"

    @admin.display(description="events in the window")
    def events(self, record: SubjectQuarantine) -> Any:
        return (record.figures or {}).get("events")

    @admin.display(description="threshold")
    def threshold(self, record: SubjectQuarantine) -> Any:
        return (record.figures or {}).get("threshold")

    @admin.action(description="Release the selected subjects (trained on again from the "
                              "next training)")
    def release_selected(self, request: HttpRequest,
                         queryset: QuerySet[SubjectQuarantine]) -> None:
        from apps.modeling.services.quarantine import release_subject

        writable = writable_tenant_ids(request)
        released = refused = 0
        for record in queryset.filter(released_at__isnull=True).select_related("tenant"):
            if not (request.user.is_superuser or record.tenant_id in writable):
                refused += 1
                continue
            release_subject(tenant=record.tenant, quarantine=record, actor=request.user)
            released += 1
        if released:
            self.message_user(request, f"Released {released} subject(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} subject(s) skipped: your role may not "
                                       "change their tenant's data.", messages.ERROR)
        if not released and not refused:
            self.message_user(request, "None of the selected subjects is quarantined.",
                              messages.WARNING)
