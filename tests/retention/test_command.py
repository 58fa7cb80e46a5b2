"""``manage.py enforce_retention [--tenant slug] [--dry-run]`` prints ``category: N``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.events.models import Event
from apps.retention.categories import retention_categories
from apps.retention.models import RetentionRun
from tests.factories.retention import at, consent_at, events_at

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


def _call(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    with at(NOW):
        call_command("enforce_retention", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _history(tenant) -> None:
    old = NOW - timedelta(days=2000)
    key = consent_at(tenant, "old-subject", old)
    events_at(tenant, key, old, n=3)
    events_at(tenant, "recent", NOW - timedelta(days=1), n=2)


def test_dry_run_prints_category_counts_and_the_run_then_prints_the_same(tenant):
    _history(tenant)
    events_before = Event.objects.for_tenant(tenant).count()

    dry, note = _call("--tenant", tenant.slug, "--dry-run")

    assert Event.objects.for_tenant(tenant).count() == events_before
    assert not RetentionRun.objects.for_tenant(tenant).exists()
    assert "dry run" in note
    lines = dry.splitlines()
    assert lines[:2] == ["events: 3", "inactive_subjects: 1"]
    assert [line.split(": ")[0] for line in lines] == [
        c.code for c in retention_categories()]
    assert all(line.split(": ")[1].isdigit() for line in lines)

    real, _ = _call("--tenant", tenant.slug)

    assert real == dry
    assert Event.objects.for_tenant(tenant).count() == 2


def test_without_a_tenant_every_tenant_is_enforced_under_its_own_heading(tenant, other_tenant):
    _history(other_tenant)
    out, _ = _call()
    blocks = out.split("[")
    assert f"{tenant.slug}]\nevents: 0" in out
    assert f"{other_tenant.slug}]\nevents: 3" in out
    assert len([b for b in blocks if b]) == 2


def test_an_unknown_tenant_is_an_error(db):
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        _call("--tenant", "nope")
