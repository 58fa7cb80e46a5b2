"""The themed admin (issue 17, item 1): the sidebar by task, readable tables instead of raw
JSON, and the per-day ingestion tally behind the events chart."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.core.display import facts_table
from apps.events.models import IngestionTally
from apps.events.services import ingest_events
from apps.tenants.models import Membership
from tests.factories.modeling import add_items
from tests.factories.privacy import make_request

pytestmark = pytest.mark.django_db


def test_json_values_render_as_escaped_tables():
    html = str(facts_table({"receipt": {"model": {"status": "final", "ndcg@10": 0.25}},
                            "handlers": [{"name": "events", "count": 3},
                                         {"name": "<script>", "count": 0}],
                            "tags": ["a", "b"], "ok": True, "none": None}))
    assert html.startswith('<table class="console-facts">')
    assert '<th scope="row">ndcg@10</th><td>0.25</td>' in html
    assert '<th scope="col">name</th><th scope="col">count</th>' in html
    assert "&lt;script&gt;" in html
    assert "<script>" not in html
    assert "a, b" in html
    assert ">yes<" in html
    assert ">—<" in html
    assert "{" not in html


def test_a_request_page_shows_the_erasure_receipt_and_check_as_tables(
        tenant, member_client, django_capture_on_commit_callbacks):
    from tests.factories.privacy import seed_subject

    seed_subject(tenant, "alice@example.com", events=2)
    with django_capture_on_commit_callbacks(execute=True):
        pr = make_request(tenant, "erasure", "alice@example.com")
    pr.refresh_from_db()
    assert pr.status == "completed"
    assert pr.erasure_check
    html = member_client(tenant).get(
        f"/admin/privacy/privacyrequest/{pr.pk}/change/").content.decode()
    assert html.count('class="console-facts"') >= 2
    assert '{"' not in html
    assert "{&quot;" not in html


def test_the_sidebar_groups_pages_by_task_and_hides_what_a_role_may_not_see(tenant,
                                                                           member_client):
    html = member_client(tenant, Membership.Role.VIEWER).get("/admin/").content.decode()
    for group in ("Requests", "Consent", "Data", "Models", "Settings", "Audit"):
        assert f">{group}<" in html.replace("\n", "").replace("  ", "") or group in html
    assert "/admin/privacy/privacyrequest/" in html
    assert "/admin/modeling/modelversion/" in html
    # Configuration changes are an owner's page: a viewer's sidebar does not offer it.
    assert "/admin/auditlog/logentry/" not in html
    owner_html = member_client(tenant).get("/admin/").content.decode()
    assert "/admin/auditlog/logentry/" in owner_html


def test_the_ingestion_tally_counts_outcomes_per_day_and_adds_up(tenant, other_tenant):
    from tests.factories.privacy import seed_subject

    seed_subject(tenant, "alice", events=0)
    add_items(tenant, ["i1"])
    now = timezone.now().isoformat()
    batch = [{"event_id": f"e{n}", "subject": "alice", "item": "i1", "type": "view",
              "occurred_at": now} for n in range(3)]
    batch.append({"event_id": "x", "subject": "bob", "item": "i1", "type": "view",
                  "occurred_at": now})
    ingest_events(tenant=tenant, events=batch)
    ingest_events(tenant=tenant, events=batch)  # the same again: duplicates
    ingest_events(tenant=tenant, events=[{"event_id": "bad"}])
    rows = {(r.status, r.reason): r.count
            for r in IngestionTally.objects.for_tenant(tenant)}
    assert rows[("accepted", "")] == 3
    assert rows[("duplicate", "duplicate")] == 3
    assert rows[("rejected", "no_consent")] == 2  # bob never consented
    assert sum(n for (s, _), n in rows.items() if s == "rejected") == 3
    assert not IngestionTally.objects.for_tenant(other_tenant).exists()
