"""The tenant dashboard at /admin/ (issue 17, item 2): its figures, their tenant scope, the
live job progress endpoint and the bounded number of queries."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.console.selectors import get_dashboard_figures
from apps.events.services import ingest_events
from apps.modeling.models import ModelVersion, PrivacyBudgetEntry, TrainingRun
from apps.privacy.models import PrivacyRequest
from apps.tenants.scoping import tenant_scope
from tests.factories.modeling import add_items
from tests.factories.privacy import make_request
from tests.factories.retention import at, consent_at
from tests.factories.tenants import MembershipFactory

pytestmark = pytest.mark.django_db


def _charts(html: str) -> dict[str, dict]:
    """``{chart key: its data}`` as the page hands them to Chart.js."""
    import html as html_module

    found = {}
    for key, value in re.findall(
            r'id="chart-([\w-]+)".*?data-value="([^"]*)"', html, flags=re.S):
        found[key] = json.loads(html_module.unescape(value))
    return found


def _overdue_request(tenant, subject: str = "late@example.com") -> PrivacyRequest:
    return make_request(tenant, "access", subject, verified=False,
                        received_at=timezone.now() - timedelta(days=45))


def _seed(tenant) -> None:
    _overdue_request(tenant)
    make_request(tenant, "erasure", "soon@example.com", verified=False,
                 received_at=timezone.now() - timedelta(days=27))
    make_request(tenant, "access", "new@example.com", verified=False)
    add_items(tenant, ["book-1"])
    ingest_events(tenant=tenant, events=[
        {"event_id": "e1", "subject": "nobody", "item": "book-1", "type": "view",
         "occurred_at": timezone.now().isoformat()},
        {"event_id": "e2", "subject": "nobody", "item": "book-1", "type": "no-such-type",
         "occurred_at": timezone.now().isoformat()}])
    ModelVersion.objects.create(
        tenant=tenant, number=1, algorithm="als", consent_snapshot_at=timezone.now(),
        metrics={"model": {"ndcg@10": 0.31}, "popularity": {"ndcg@10": 0.12}})
    PrivacyBudgetEntry.objects.create(tenant=tenant, epsilon=1.5, mechanism="laplace",
                                      contribution_bound=1,
                                      noise_scale=1.0)


def test_a_member_lands_on_the_dashboard_with_its_figures(tenant, member_client):
    _seed(tenant)
    response = member_client(tenant).get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    charts = _charts(html)
    assert set(charts) == {"requests-status", "requests-due", "consent-rate", "events",
                           "model-quality", "privacy-budget"}
    due = dict(zip(charts["requests-due"]["labels"],
                   charts["requests-due"]["datasets"][0]["data"], strict=True))
    assert due["Overdue"] == 1
    assert due["At risk"] == 1
    assert sum(charts["requests-status"]["datasets"][0]["data"]) == 3
    quality = {d["label"]: d["data"] for d in charts["model-quality"]["datasets"]}
    assert quality == {"Model NDCG@10": [0.31], "Popularity baseline NDCG@10": [0.12]}
    events = {d["label"]: sum(d["data"]) for d in charts["events"]["datasets"]}
    assert events["Rejected: unknown_type"] == 1
    assert events["Rejected: no_consent"] == 1
    budget = {d["label"]: d["data"][0] for d in charts["privacy-budget"]["datasets"]}
    assert budget["Spent"] == 1.5
    # Every chart has a text alternative: a caption and a table of the numbers.
    assert html.count("<figcaption") == 6
    assert html.count("<table>") >= 6
    assert 'id="kpi-overdue">1<' in html


def test_the_consent_rate_is_the_state_at_each_days_end_not_the_days_decisions(tenant):
    """Per day: among the subjects who had decided on the purpose by the end of the day,
    the share whose latest decision was a grant still valid then (expiry 13 months)."""
    now = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
    day = timedelta(days=1)
    noon = datetime(2031, 3, 1, 11, 0, tzinfo=UTC)
    consent_at(tenant, "old-grant", noon - 20 * day)           # before the window: counts
    consent_at(tenant, "changed-mind", noon - 3 * day)
    consent_at(tenant, "changed-mind", noon - 1 * day, granted=False)
    consent_at(tenant, "refused", noon - 2 * day, granted=False)
    consent_at(tenant, "twice", noon - 2 * day)
    consent_at(tenant, "twice", noon - 2 * day + timedelta(minutes=5))
    consent_at(tenant, "expired", noon - 500 * day)            # > 13 months: not valid
    with tenant_scope(tenant), at(now):
        figures = get_dashboard_figures(tenant=tenant)
    rate = {(r["day"], r["granted"], r["total"]) for r in figures.consent
            if r["purpose"] == "personalization"}
    today = now.date()
    assert rate == {
        *((today - n * day, 1, 2) for n in range(13, 3, -1)),  # old-grant of it and expired
        (today - 3 * day, 2, 3),
        (today - 2 * day, 3, 5),
        (today - 1 * day, 2, 5),
        (today, 2, 5),
    }


@pytest.mark.parametrize("expiry", [0, 13])
def test_a_grant_past_the_expiry_counts_only_when_consent_never_expires(tenant, expiry):
    tenant.settings = {**tenant.settings, "consent_expiry_months": expiry}
    tenant.save()
    now = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
    consent_at(tenant, "long-ago", now - timedelta(days=400))
    with tenant_scope(tenant), at(now):
        figures = get_dashboard_figures(tenant=tenant)
    [today] = [r for r in figures.consent
               if r["purpose"] == "personalization" and r["day"] == now.date()]
    assert (today["granted"], today["total"]) == ((1 if expiry == 0 else 0), 1)


def test_another_tenants_member_sees_none_of_these_figures(tenant, other_tenant,
                                                           member_client):
    _seed(other_tenant)
    TrainingRun.objects.create(tenant=other_tenant, status=TrainingRun.Status.RUNNING,
                               progress={"stage": "fit", "candidate": "als",
                                         "iteration": 3, "iterations": 10})
    client = member_client(tenant)
    # Asking for the other tenant by id is ignored: the member's own tenant is shown.
    for path in ("/admin/", f"/admin/?tenant={other_tenant.pk}"):
        html = client.get(path).content.decode()
        charts = _charts(html)
        assert sum(charts["requests-status"]["datasets"][0]["data"]) == 0
        assert all(v in (0, None) for d in charts["model-quality"]["datasets"]
                   for v in d["data"])
        assert all(v == 0 for d in charts["events"]["datasets"] for v in d["data"])
        assert other_tenant.name not in html
        assert "No job is running." in html
    jobs = client.get(f"/admin/console/jobs?tenant={other_tenant.pk}").json()
    assert jobs == {"tenant": tenant.pk, "jobs": []}


def test_a_member_of_two_tenants_picks_one(tenant, other_tenant, member_client):
    _seed(other_tenant)
    client = member_client(tenant)
    user = client.get("/admin/").wsgi_request.user
    MembershipFactory(tenant=other_tenant, user=user)
    html = client.get(f"/admin/?tenant={other_tenant.pk}").content.decode()
    assert sum(_charts(html)["requests-status"]["datasets"][0]["data"]) == 3


def test_the_jobs_endpoint_reports_live_progress(tenant, member_client):
    run = TrainingRun.objects.create(
        tenant=tenant, status=TrainingRun.Status.RUNNING,
        progress={"stage": "fit", "candidate": "als", "iteration": 5, "iterations": 20})
    client = member_client(tenant)
    [job] = client.get("/admin/console/jobs").json()["jobs"]
    assert (job["kind"], job["id"], job["percent"]) == ("training", run.pk, 25)
    assert job["url"] == f"/admin/modeling/trainingrun/{run.pk}/change/"
    TrainingRun.objects.for_tenant(tenant).filter(pk=run.pk).update(
        progress={"stage": "fit", "candidate": "als", "iteration": 15, "iterations": 20})
    assert client.get("/admin/console/jobs").json()["jobs"][0]["percent"] == 75
    TrainingRun.objects.for_tenant(tenant).filter(pk=run.pk).update(
        status=TrainingRun.Status.SUCCEEDED)
    assert client.get("/admin/console/jobs").json()["jobs"] == []


def test_the_jobs_endpoint_needs_a_login(tenant):
    from django.test import Client

    response = Client().get("/admin/console/jobs")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="1M events: PostgreSQL only")
def test_the_dashboard_renders_in_at_most_15_queries_with_1m_events(tenant, member_client):
    """Run in the PostgreSQL run (CI's second run; /work/wt/notes/pgtest.sh)."""
    _seed(tenant)
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO events_event (created_at, updated_at, event_id, subject_key, type,
                                      value, occurred_at, properties, tenant_id, item_id)
            SELECT now(), now(), 'bulk-' || g, md5((g %% 5000)::text) || md5(g::text),
                   'view', NULL, now() - (g %% 30) * interval '1 day', '{}', %s,
                   (SELECT id FROM events_item WHERE tenant_id = %s LIMIT 1)
            FROM generate_series(1, 1000000) g""", [tenant.pk, tenant.pk])
        cursor.execute("ANALYZE events_event")
        cursor.execute("SELECT count(*) FROM events_event WHERE tenant_id = %s", [tenant.pk])
        assert cursor.fetchone()[0] >= 1_000_000
    client = member_client(tenant)
    client.get("/admin/")  # the session and caches warm
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/")
    assert response.status_code == 200
    assert len(_charts(response.content.decode())) == 6
    assert len(queries) <= 15, "\n".join(q["sql"][:200] for q in queries)


def test_a_superuser_picks_any_tenant_and_a_user_without_tenant_sees_no_figures(
        tenant, other_tenant, admin_client, client, django_user_model):
    _seed(other_tenant)
    html = admin_client.get(f"/admin/?tenant={other_tenant.pk}").content.decode()
    assert sum(_charts(html)["requests-status"]["datasets"][0]["data"]) == 3
    loner = django_user_model.objects.create_user("loner", password="pw", is_staff=True)
    client.force_login(loner)
    html = client.get("/admin/").content.decode()
    assert _charts(html) == {}
    assert "not a member of any tenant" in html
    assert client.get("/admin/console/jobs").status_code == 404
