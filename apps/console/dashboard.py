"""The tenant dashboard at ``/admin/`` (unfold's ``DASHBOARD_CALLBACK``) and its live job
progress, ``/admin/console/jobs`` (JSON, polled by static/console/dashboard.js).

The tenant is the member's own (``?tenant=<id>`` picks among their memberships; anything
else is ignored); a superuser may pick any tenant. Figures come from
:mod:`apps.console.selectors`, scoped to that one tenant."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache

from apps.console.selectors import DashboardFigures, get_dashboard_figures, list_running_jobs
from apps.tenants.admin import member_roles
from apps.tenants.models import Tenant
from apps.tenants.scoping import tenant_scope

# Colours with at least 3:1 contrast on white (WCAG 1.4.11, non-text contrast).
BLUE, GREY, RED, AMBER, GREEN, PURPLE = ("#1d4ed8", "#4b5563", "#b91c1c", "#b45309",
                                         "#15803d", "#7e22ce")
PALETTE = [BLUE, GREEN, PURPLE, AMBER, RED, GREY, "#0e7490", "#be185d"]
STATUS_LABELS = {"received": "Received", "verifying": "Verifying", "verified": "Verified",
                 "awaiting_approval": "Awaiting approval", "in_progress": "In progress",
                 "completed": "Completed", "rejected": "Rejected"}
DUE_LABELS = {"overdue": "Overdue", "at_risk": "At risk", "within_14_days": "Due in 14 days",
              "within_30_days": "Due in 30 days", "later": "Later"}
DUE_COLOURS = {"overdue": RED, "at_risk": AMBER, "within_14_days": BLUE,
               "within_30_days": BLUE, "later": GREY}


def visible_tenants(request: HttpRequest) -> list[Tenant]:
    """The tenants whose dashboard the user may open, by name."""
    if request.user.is_superuser:
        return list(Tenant.objects.order_by("name")[:200])
    return list(Tenant.objects.filter(pk__in=list(member_roles(request))).order_by("name"))


def chosen_tenant(request: HttpRequest, tenants: list[Tenant]) -> Tenant | None:
    wanted = request.GET.get("tenant", "")
    for tenant in tenants:
        if str(tenant.pk) == wanted:
            return tenant
    return tenants[0] if tenants else None


def _options(x_title: str, y_title: str, *, stacked: bool = False, horizontal: bool = False,
             y_max: float | None = None, counts: bool = False) -> dict[str, Any]:
    value_axis: dict[str, Any] = {"title": {"display": bool(y_title), "text": y_title},
                                  "beginAtZero": True, "stacked": stacked}
    if counts:
        value_axis["ticks"] = {"precision": 0}  # no half requests
    if y_max is not None:
        value_axis["max"] = y_max
    category_axis = {"title": {"display": True, "text": x_title}, "stacked": stacked}
    return {
        "responsive": True, "maintainAspectRatio": False, "animation": False,
        "indexAxis": "y" if horizontal else "x",
        "plugins": {"legend": {"display": True, "position": "bottom"}},
        "scales": {"x": value_axis if horizontal else category_axis,
                   "y": category_axis if horizontal else value_axis},
    }


def _chart(key: str, title: str, summary: str, kind: str, labels: list[str],
           datasets: list[dict[str, Any]], options: dict[str, Any],
           first_column: str) -> dict[str, Any]:
    """One chart, with its text alternative: a table of the same numbers."""
    for n, dataset in enumerate(datasets):
        colour = dataset.pop("colour", PALETTE[n % len(PALETTE)])
        dataset.setdefault("backgroundColor", colour)
        dataset.setdefault("borderColor", colour)
        if kind == "line":
            dataset.update({"fill": False, "pointRadius": 4, "borderWidth": 2,
                            "spanGaps": True})
    # A legend only names several series; one series is named by the axis and the title.
    options["plugins"]["legend"]["display"] = len(datasets) > 1
    rows = [[label, *[_cell(d["data"][i]) for d in datasets]] for i, label in enumerate(labels)]
    return {
        "key": key, "title": title, "summary": summary, "type": kind,
        "data": json.dumps({"labels": labels, "datasets": datasets}),
        "options": json.dumps(options),
        "has_data": any(v not in (None, 0) for d in datasets for v in d["data"]),
        "table": {"headers": [first_column, *[d["label"] for d in datasets]], "rows": rows},
    }


def _cell(value: Any) -> str:
    if value is None:
        return "no data"
    return f"{value:g}" if isinstance(value, float) else str(value)


def build_charts(figures: DashboardFigures) -> list[dict[str, Any]]:
    charts = []
    by_status = figures.requests["by_status"]
    statuses = [s for s in STATUS_LABELS if s in by_status] + sorted(
        s for s in by_status if s not in STATUS_LABELS)
    charts.append(_chart(
        "requests-status", "Privacy requests by status",
        f"{sum(by_status.values())} requests in all.", "bar",
        [STATUS_LABELS.get(s, s) for s in statuses],
        [{"label": "Requests", "data": [by_status[s] for s in statuses], "colour": BLUE}],
        _options("Status", "Requests", counts=True), "Status"))

    by_due = figures.requests["by_due"]
    charts.append(_chart(
        "requests-due", "Open requests by due date",
        f"{by_due['overdue']} overdue, {by_due['at_risk']} at risk.", "bar",
        list(DUE_LABELS.values()),
        [{"label": "Open requests", "data": [by_due[b] for b in DUE_LABELS],
          "backgroundColor": [DUE_COLOURS[b] for b in DUE_LABELS], "colour": BLUE}],
        _options("Due", "Open requests", counts=True), "Due"))

    day_labels = [d.isoformat() for d in figures.days]
    purposes = sorted({row["purpose"] for row in figures.consent})
    rate = {(r["day"].isoformat(), r["purpose"]): round(100 * r["granted"] / r["total"], 1)
            for r in figures.consent if r["total"]}
    charts.append(_chart(
        "consent-rate", "Consent rate per purpose",
        "State at the end of each day (UTC; today: now): of the subjects who had decided on "
        "the purpose by then, the share whose latest decision was a grant still valid (not "
        "expired), in %.", "line",
        day_labels,
        [{"label": p, "data": [rate.get((d, p)) for d in day_labels]} for p in purposes]
        or [{"label": "No decisions", "data": [None] * len(day_labels)}],
        _options("Day (UTC)", "Granted (%)", y_max=100), "Day"))

    series: dict[str, dict[str, int]] = {}
    for row in figures.ingestion:
        name = "Accepted" if row["status"] == "accepted" else (
            f"{row['status'].capitalize()}: {row['reason'] or 'other'}")
        series.setdefault(name, {})[row["day"].isoformat()] = row["count"]
    names = sorted(series, key=lambda n: (n != "Accepted", n))
    accepted = sum(series.get("Accepted", {}).values())
    refused = sum(sum(v.values()) for n, v in series.items() if n != "Accepted")
    charts.append(_chart(
        "events", "Events accepted and rejected per day",
        f"{accepted} accepted, {refused} rejected or duplicate in {len(day_labels)} days.",
        "bar", day_labels,
        [{"label": n, "data": [series[n].get(d, 0) for d in day_labels],
          **({"colour": GREEN} if n == "Accepted" else {})} for n in names]
        or [{"label": "Accepted", "data": [0] * len(day_labels), "colour": GREEN}],
        _options("Day (UTC)", "Events", stacked=True, counts=True), "Day"))

    quality = figures.quality
    charts.append(_chart(
        "model-quality", "Model quality by version",
        "Hold-out NDCG@10 of each model version against the popularity baseline.", "line",
        [f"v{q['number']}" for q in quality],
        [{"label": "Model NDCG@10", "data": [q["ndcg"] for q in quality], "colour": BLUE},
         {"label": "Popularity baseline NDCG@10", "data": [q["baseline"] for q in quality],
          "colour": GREY, "borderDash": [6, 4]}],
        _options("Model version", "NDCG@10"), "Version"))

    budget = figures.budget
    spent, cap = round(budget["spent"], 4), budget["cap"]
    charts.append(_chart(
        "privacy-budget", "Privacy budget",
        f"ε {spent:g} spent of a cap of {cap:g} over {budget['window_days']} days.", "bar",
        ["Budget (ε)"],
        [{"label": "Spent", "data": [spent], "colour": PURPLE},
         {"label": "Remaining", "data": [round(max(cap - spent, 0.0), 4)], "colour": GREY}],
        _options("ε", "", stacked=True, horizontal=True), "Budget"))
    return charts


def _with_links(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for job in jobs:
        try:
            job["url"] = reverse(job.pop("url_name"), args=[job["id"]])
        except NoReverseMatch:
            job["url"] = None
    return jobs


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    tenants = visible_tenants(request)
    tenant = chosen_tenant(request, tenants)
    if tenant is None:
        return {**context, "console_tenant": None}
    with tenant_scope(tenant):
        figures = get_dashboard_figures(tenant=tenant)
    return {**context, "console_tenant": tenant, "console_tenants": tenants,
            "charts": build_charts(figures), "jobs": _with_links(figures.jobs),
            "requests_figures": figures.requests,
            "jobs_url": f"{reverse('console-jobs')}?tenant={tenant.pk}"}


@never_cache
@staff_member_required
def jobs_view(request: HttpRequest) -> JsonResponse:
    """The running jobs of the chosen tenant, for the dashboard's live progress."""
    tenant = chosen_tenant(request, visible_tenants(request))
    if tenant is None:
        return JsonResponse({"error": {"code": "not_found", "message": "Not found.",
                                       "details": {}}}, status=404)
    with tenant_scope(tenant):
        jobs = list_running_jobs(tenant=tenant)
    return JsonResponse({"tenant": tenant.pk, "jobs": _with_links(jobs)})
