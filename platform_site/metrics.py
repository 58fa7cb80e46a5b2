"""``GET /metrics``: Prometheus text format (README "Metrics").

Two sources, one answer:

* counters of the web processes (:mod:`apps.core.metrics`): summed over every gunicorn
  worker through ``PROMETHEUS_MULTIPROC_DIR`` when it is set, else this process's own;
* figures kept in the database, read at scrape time (so they hold across web, worker and
  beat processes and restarts): privacy requests by tenant and status and the overdue ones,
  durable jobs by kind and status (queue depth: ``pending``; failures: ``failed``), the
  last training's duration and the active model's NDCG@10 per tenant.

Access: with ``METRICS_TOKEN`` set, ``Authorization: Bearer <token>`` is required; without
it only clients in ``METRICS_ALLOWED_NETWORKS`` (default loopback) are answered.
Labels are tenant slugs, statuses, job kinds, routes and reason codes: never a subject.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from apps.core.exceptions import error_body


class DatabaseCollector(Collector):
    """Gauges computed from the database at each scrape. Crosses tenants on purpose
    (``all_tenants``): the operator's view of the whole platform; only counts leave."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from apps.core.jobs import durable_job_models
        from apps.modeling.models import ModelVersion, TrainingRun
        from apps.privacy.models import PrivacyRequest
        from apps.tenants.models import Tenant

        slugs = dict(Tenant.objects.values_list("pk", "slug"))
        now = timezone.now()

        requests = GaugeMetricFamily(
            "discreet_privacy_requests", "Privacy requests by tenant and status.",
            labels=["tenant", "status"])
        for row in (PrivacyRequest.all_tenants.values("tenant_id", "status")
                    .annotate(n=Count("id")).order_by()):
            requests.add_metric([slugs.get(row["tenant_id"], ""), row["status"]], row["n"])
        yield requests

        overdue = GaugeMetricFamily(
            "discreet_privacy_requests_overdue",
            "Open privacy requests past their due date, by tenant.", labels=["tenant"])
        open_statuses = list(PrivacyRequest.OPEN_STATUSES)
        for row in (PrivacyRequest.all_tenants.filter(status__in=open_statuses, due_at__lt=now)
                    .values("tenant_id").annotate(n=Count("id")).order_by()):
            overdue.add_metric([slugs.get(row["tenant_id"], "")], row["n"])
        yield overdue

        jobs = GaugeMetricFamily(
            "discreet_jobs", "Durable jobs by kind and status (queue depth: pending; "
            "failures: failed).", labels=["job", "status"])
        for model in durable_job_models():
            counts = dict(model.all_tenants.values_list("status").annotate(n=Count("id"))
                          .order_by())
            for status in model.Status.values:
                jobs.add_metric([model._meta.label_lower, status], counts.get(status, 0))
        yield jobs

        duration = GaugeMetricFamily(
            "discreet_training_last_duration_seconds",
            "How long the tenant's last successful training run took.", labels=["tenant"])
        succeeded = TrainingRun.all_tenants.filter(
            status="succeeded", started_at__isnull=False, finished_at__isnull=False)
        latest = succeeded.values("tenant_id").annotate(last=Max("id")).order_by()
        for run in succeeded.filter(pk__in=[r["last"] for r in latest]).only(
                "tenant_id", "started_at", "finished_at"):
            duration.add_metric([slugs.get(run.tenant_id, "")],
                                (run.finished_at - run.started_at).total_seconds())
        yield duration

        ndcg = GaugeMetricFamily(
            "discreet_active_model_ndcg_at_10",
            "NDCG@10 of the tenant's active model on its hold-out.", labels=["tenant"])
        for version in ModelVersion.all_tenants.filter(status=ModelVersion.Status.ACTIVE).only(
                "tenant_id", "metrics"):
            value = (version.metrics or {}).get("ndcg@10")
            if isinstance(value, int | float):
                ndcg.add_metric([slugs.get(version.tenant_id, "")], float(value))
        yield ndcg


def _client_allowed(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False)
               for net in settings.METRICS_ALLOWED_NETWORKS)


def _refusal(request: HttpRequest) -> JsonResponse | None:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = JsonResponse(error_body("not_authenticated",
                                               "A valid metrics token is required."),
                                    status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return None
    if not _client_allowed(request):
        return JsonResponse(error_body("permission_denied",
                                       "Metrics are served to internal addresses only."),
                            status=403)
    return None


def _process_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@require_GET
def metrics_view(request: HttpRequest) -> Any:
    refused = _refusal(request)
    if refused is not None:
        return refused
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector())
    body = _process_metrics() + generate_latest(database)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
