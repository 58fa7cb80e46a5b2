"""``/metrics`` (README "Metrics"): Prometheus text, guarded by a token or internal
addresses; after events and requests its counters move, and no label holds a subject."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.tenants.services import pseudonymize
from tests.factories.events import event_payload, grant_consent
from tests.factories.privacy import make_request

SUBJECTS = ["metrics-alice@example.com", "metrics-bob-4711", "metrics-carol"]


def scrape(client, **headers) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return sum(v for (n, lbl), v in samples.items()
               if n == name and all((k, x) in lbl for k, x in labels.items()))


def test_counters_move_with_events_and_requests_and_no_label_holds_a_subject(
        tenant, api, client, settings):
    settings.METRICS_TOKEN = "metrics-test-token"
    auth = {"Authorization": "Bearer metrics-test-token"}
    before = scrape(client, **auth)
    grant_consent(tenant, SUBJECTS[0])
    events = [event_payload(SUBJECTS[0]), event_payload(SUBJECTS[1])]  # bob: no consent
    response = api.post("/api/v1/events", json.dumps({"events": events}),
                        content_type="application/json")
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"] == 1
    subject_route = api.get(f"/api/v1/subjects/{SUBJECTS[2]}/consent")
    assert subject_route.status_code == 200
    make_request(tenant, "restriction", SUBJECTS[2])
    after = scrape(client, **auth)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("discreet_http_requests_total", route="api/v1/events", method="POST",
                status="200") == 1
    assert grew("discreet_http_request_duration_seconds_count", route="api/v1/events") == 1
    assert grew("discreet_http_requests_total",
                route="api/v1/subjects/<path:subject>/consent", method="GET") == 1
    assert grew("discreet_events_total", tenant=tenant.slug, outcome="accepted") == 1
    rejected = [lbl for (n, lbl), v in after.items() if n == "discreet_events_total"
                and ("tenant", tenant.slug) in lbl and ("outcome", "rejected") in lbl and v]
    assert rejected
    assert all(dict(lbl)["reason"] for lbl in rejected)  # by reason code
    assert value(after, "discreet_privacy_requests", tenant=tenant.slug) >= 1
    assert ("discreet_privacy_requests_overdue" in {n for n, _ in after}
            or value(after, "discreet_privacy_requests_overdue") == 0)
    assert any(n == "discreet_jobs" and ("status", "pending") in lbl for n, lbl in after)

    forbidden = set(SUBJECTS) | {pseudonymize(tenant, s) for s in SUBJECTS}
    for _, labels in after:
        for _, label_value in labels:
            assert not any(f in label_value for f in forbidden), label_value


def test_the_token_is_required_when_set(client, settings, db):
    settings.METRICS_TOKEN = "metrics-test-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer metrics-test-token"})
    assert response.status_code == 200


@pytest.mark.parametrize(("address", "allowed"), [("127.0.0.1", True), ("10.0.0.8", False),
                                                  ("203.0.113.9", False)])
def test_without_a_token_only_internal_addresses_are_answered(client, settings, db, address,
                                                              allowed):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == (200 if allowed else 403)
    if not allowed:
        assert response.json()["error"]["code"] == "permission_denied"
    forged = client.get("/metrics", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert forged.status_code == response.status_code


@pytest.mark.slow
def test_counts_of_several_processes_are_summed_through_the_multiprocess_directory(tmp_path):
    """Gunicorn's workers are separate processes: with PROMETHEUS_MULTIPROC_DIR the scrape
    (in any of them) sums what each counted."""
    import os
    import subprocess
    import sys

    from prometheus_client.parser import text_string_to_metric_families as parse

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "platform_site.settings.test"}
    count = ("from apps.core.metrics import count_events; "
             "count_events('mp-tenant', [('accepted', None)] * 3)")
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=120)
    scrape = ("import django; django.setup(); from platform_site.metrics import "
              "_process_metrics; print(_process_metrics().decode())")
    text = subprocess.run([sys.executable, "-c", scrape], env=env, check=True, timeout=120,
                          capture_output=True, text=True).stdout
    values = [s.value for f in parse(text) for s in f.samples
              if s.name == "discreet_events_total" and s.labels.get("tenant") == "mp-tenant"]
    assert values == [6.0]
