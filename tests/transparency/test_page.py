"""The public "how recommendations work" page (issue 19 item 1): public, server-rendered,
built from the live configuration, never stale."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.consent.selectors import Level
from apps.events.models import EventType
from apps.modeling.models import ModelVersion
from apps.modeling.services import activate_version, train_model
from apps.retention.services import set_retention_policy
from apps.transparency.selectors import LEVEL_DESCRIPTIONS
from tests.factories.modeling import configure, planted_dataset


def _url(tenant) -> str:
    return f"/privacy/{tenant.slug}/how-recommendations-work"


def _get(tenant, **headers):
    return Client().get(_url(tenant), headers=headers)


def _row(html: str, attribute: str, value: str) -> str:
    match = re.search(rf'<tr data-{attribute}="{re.escape(value)}">(.*?)</tr>', html, re.S)
    assert match, f"no row {attribute}={value}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def test_the_page_is_public_and_needs_no_script(tenant):
    response = _get(tenant)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<script" not in html
    assert tenant.name in html
    assert re.search(r'<html lang="en(-us)?">', html)
    assert response["Cache-Control"] == "no-cache"
    assert "'self'" in response["Content-Security-Policy"]


def test_an_unknown_or_inactive_tenant_is_a_404_page(tenant):
    response = Client().get("/privacy/no-such-tenant/how-recommendations-work")
    assert response.status_code == 404
    assert "There is no transparency page at this address." in response.content.decode()

    tenant.is_active = False
    tenant.save(update_fields=["is_active"])
    assert _get(tenant).status_code == 404


def test_the_signals_and_weights_follow_the_event_schema(tenant):
    before = _get(tenant).content.decode()
    assert _row(before, "signal", "purchase").startswith("purchase 8 ")
    assert "its value" in _row(before, "signal", "rating")

    purchase = EventType.objects.for_tenant(tenant).get(code="purchase")
    purchase.weight = 6.5
    purchase.save()
    EventType.objects.create(tenant=tenant, code="wishlist", weight=3, purpose="personalization")

    after = _get(tenant).content.decode()
    assert _row(after, "signal", "purchase").startswith("purchase 6.5 ")
    assert _row(after, "signal", "wishlist").startswith("wishlist 3 ")
    assert 'data-signal="wishlist"' not in before


def test_the_page_names_the_serving_algorithm_and_follows_its_switch(tenant):
    assert "No personalized model is in use yet" in _get(tenant).content.decode()
    planted_dataset(tenant)
    configure(tenant, model_algorithms=["bm25"])
    bm25 = train_model(tenant=tenant)
    assert bm25.status == ModelVersion.Status.ACTIVE

    html = _get(tenant).content.decode()
    assert 'data-algorithm="bm25"' in html
    assert "BM25 item-kNN (implicit)" in html
    assert "ALS (implicit)" not in html
    assert f"{bm25.created_at:%-d %B %Y, %H:%M} UTC" in html

    configure(tenant, model_algorithms=["als"], model_activation_tolerance=1.0)
    als = train_model(tenant=tenant)
    assert als.algorithm == "als"
    assert als.status == ModelVersion.Status.ACTIVE
    html = _get(tenant).content.decode()
    assert "ALS (implicit)" in html
    assert "BM25 item-kNN" not in html

    activate_version(tenant=tenant, version=bm25)  # back: the page follows
    assert "BM25 item-kNN (implicit)" in _get(tenant).content.decode()


def test_retention_periods_are_the_tenants(tenant):
    html = _get(tenant).content.decode()
    assert _row(html, "category", "events") == "Interaction events 365 days"
    assert _row(html, "category", "inactive_subjects").startswith("Inactive subjects 365 days")

    set_retention_policy(tenant=tenant, category="events", days=30)
    set_retention_policy(tenant=tenant, category="consent_ledger", hours=12)
    html = _get(tenant).content.decode()
    assert _row(html, "category", "events") == "Interaction events 30 days"
    assert _row(html, "category", "inactive_subjects").startswith("Inactive subjects 30 days")
    assert _row(html, "category", "consent_ledger") == "Consent ledger 12 hours"
    assert "Interactions are kept at most 30 days" in html  # the declaration's own words


def test_every_personalization_level_is_described(tenant):
    assert set(LEVEL_DESCRIPTIONS) == set(Level.values)
    html = _get(tenant).content.decode()
    for level in Level.values:
        assert f'data-level="{level}"' in html
    assert f'href="/privacy/{tenant.slug}/preferences"' in html
    assert f'href="/privacy/{tenant.slug}/"' in html


def test_the_differential_privacy_budget_is_the_tenants(tenant):
    html = _get(tenant).content.decode()
    assert "ε = 1 " in html or "ε = 1." in html
    assert "within any 365 days may spend at most ε = 10 in total" in html

    tenant.settings = {**tenant.settings, "dp_epsilon": 0.25, "dp_budget_total": 4,
                       "dp_budget_window_days": 180}
    tenant.save(update_fields=["settings"])
    html = _get(tenant).content.decode()
    assert "a privacy budget of ε = 0.25." in html
    assert "within any 180 days may spend at most ε = 4 in total" in html


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_page_only_reads(tenant, method):
    assert getattr(Client(), method)(_url(tenant)).status_code == 405


def test_a_cache_revalidates_and_never_serves_a_stale_page(tenant):
    first = _get(tenant)
    etag = first["ETag"]
    assert "Accept-Language" in first["Vary"]

    assert _get(tenant, if_none_match=etag).status_code == 304

    set_retention_policy(tenant=tenant, category="events", days=90)
    changed = _get(tenant, if_none_match=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert "90 days" in changed.content.decode()
