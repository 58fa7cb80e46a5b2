"""Fulfilment jobs: the access zip, erasure with its receipt and verification, resuming
after a crash without doing anything twice, and nothing released before verification."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core import subject_data
from apps.core.jobs import DurableJob, sweep_stuck_jobs
from apps.core.subject_data import subject_data_stores
from apps.events.models import Event
from apps.privacy.models import DataExport, ErasureTombstone, FulfilmentJob, PrivacyRequest
from apps.privacy.services import open_download, run_fulfilment
from apps.privacy.services.export import EXPORT_SCHEMA
from tests.db_search import columns_containing
from tests.factories.privacy import make_request, seed_subject
from tests.subject_data import declared, throwaway_store

EXEMPT = {"privacy_privacyrequest.subject_key", "privacy_erasuretombstone.subject_key"}


def _zip_of(pr: PrivacyRequest) -> zipfile.ZipFile:
    export = DataExport.objects.for_tenant(pr.tenant_id).get(privacy_request=pr)
    with default_storage.open(export.path, "rb") as handle:
        return zipfile.ZipFile(io.BytesIO(handle.read()))


def test_the_access_zip_holds_json_csv_purposes_retention_and_logic(tenant, oncommit):
    key = seed_subject(tenant, "alice@example.com", events=3)
    with oncommit():
        pr = make_request(tenant, "access", "alice@example.com")
    pr.refresh_from_db()
    assert pr.status == "completed"
    archive = _zip_of(pr)
    names = set(archive.namelist())
    assert {"export.json", "export.schema.json", "README.txt", "events.event.csv",
            "consent.ledger.csv"} <= names
    document = json.loads(archive.read("export.json"))
    assert document["schema"] == EXPORT_SCHEMA
    by_handler = {c["handler"]: c for c in document["categories"]}
    assert by_handler["events.event"]["count"] == 3
    assert by_handler["events.event"]["retention"]["days"] == 365
    assert by_handler["consent.ledger"]["count"] >= 1
    assert {p["key"] for p in document["purposes"]} >= {"personalization", "analytics"}
    assert "weight" in document["recommender_logic"]
    rows = list(csv.DictReader(io.StringIO(archive.read("events.event.csv").decode())))
    assert len(rows) == 3
    assert "event_id" in rows[0]
    assert "alice@example.com" not in archive.read("export.json").decode()
    assert key not in archive.read("export.json").decode()
    schema = json.loads(archive.read("export.schema.json"))
    assert set(schema["required"]) <= set(document)
    assert not default_storage.exists(f"privacy-exports/{tenant.pk}/{pr.reference}/parts/"
                                      "events.event.json")


def test_a_download_link_expires_and_the_file_is_deleted_after_7_days(tenant, oncommit):
    from apps.privacy.services import export_link, run_housekeeping

    seed_subject(tenant, "alice@example.com")
    with oncommit():
        pr = make_request(tenant, "portability", "alice@example.com")
    token = export_link(privacy_request=pr)["url"].rsplit("/", 1)[-1]
    export = DataExport.objects.for_tenant(tenant).get(privacy_request=pr)
    later = timezone.now() + timedelta(days=7, seconds=1)
    import time_machine

    with time_machine.travel(later, tick=False):
        assert open_download(tenant=tenant, token=token) is None
        run_housekeeping()
    export.refresh_from_db()
    assert export.deleted_at is not None
    assert not default_storage.exists(export.path)
    pr.refresh_from_db()
    assert not bytes(pr.contact_ciphertext or b"")  # nothing more can be sent: wiped


def test_an_erasure_removes_the_subject_everywhere_but_the_proof(tenant, oncommit):
    key = seed_subject(tenant, "alice@example.com", events=5)
    with oncommit():
        access = make_request(tenant, "access", "alice@example.com", channel="portal")
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com", channel="portal")
    pr.refresh_from_db()
    assert pr.status == "completed", pr.last_error
    assert set(columns_containing(key)) <= EXEMPT
    assert ErasureTombstone.objects.for_tenant(tenant).filter(subject_key=key).exists()
    receipt = pr.result["receipt"]
    counts = {c["handler"]: c["count"] for c in receipt["categories"]}
    assert counts["events.event"] == 5
    assert counts["privacy.exports"] == 1  # the earlier access request's file
    assert receipt["verification"]["hits"] == 0
    assert pr.erasure_check["hits"] == []
    assert not default_storage.exists(
        DataExport.objects.for_tenant(tenant).get(privacy_request=access).path)
    assert not bytes(pr.contact_ciphertext or b"")
    assert pr.contact_wiped_at is not None
    steps = AuditEvent.objects.for_tenant(tenant).filter(action="privacy.erasure_step")
    assert steps.count() == len(subject_data_stores())
    assert all(e.subject_token == "" for e in steps)


def _counting(name: str, monkeypatch) -> list[int]:
    calls: list[int] = []
    original = subject_data.get_subject_data_store(name)

    def erase(tenant, subject_key):
        calls.append(1)
        return original.erase(tenant, subject_key)

    monkeypatch.setitem(subject_data._stores, name, dataclasses.replace(original, erase=erase))
    return calls


def test_a_crashed_erasure_resumes_after_the_last_finished_handler(tenant, oncommit,
                                                                   monkeypatch):
    key = seed_subject(tenant, "alice@example.com", events=4)
    event_calls = _counting("events.event", monkeypatch)
    crashes: list[int] = []

    def flaky(tenant, subject_key):
        if not crashes:
            crashes.append(1)
            raise RuntimeError("worker lost")
        return 0

    with declared(throwaway_store("test.flaky", category="test", erase=flaky)):
        with oncommit():
            pr = make_request(tenant, "erasure", "alice@example.com")
        job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
        assert job.status == DurableJob.Status.PENDING  # left for the sweeper
        assert "events.event" in job.progress["steps"]
        assert "test.flaky" not in job.progress["steps"]
        assert not Event.all_tenants.filter(subject_key=key).exists()
        with oncommit():
            assert sweep_stuck_jobs(now=timezone.now() + timedelta(hours=1))["requeued"] == 1
    pr.refresh_from_db()
    job.refresh_from_db()
    assert pr.status == "completed"
    assert job.status == DurableJob.Status.SUCCEEDED
    assert job.attempts == 2
    assert event_calls == [1]  # not done twice
    steps = AuditEvent.objects.for_tenant(tenant).filter(action="privacy.erasure_step")
    assert steps.filter(details__handler="events.event").count() == 1
    counts = {c["handler"]: c["count"] for c in pr.result["receipt"]["categories"]}
    assert counts["events.event"] == 4


def test_running_a_finished_job_again_does_nothing(tenant, oncommit, monkeypatch):
    seed_subject(tenant, "alice@example.com")
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    calls = _counting("events.event", monkeypatch)
    job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
    job.status = DurableJob.Status.RUNNING  # a duplicate delivery racing the first
    run_fulfilment(job=job)
    assert calls == []


def test_an_erasure_that_leaves_anything_behind_is_not_completed(tenant, oncommit):
    seed_subject(tenant, "alice@example.com")
    stubborn = throwaway_store("test.stubborn",
                               verify_erased=lambda t, key: ["a copy in the test store"])
    with declared(stubborn), oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    pr.refresh_from_db()
    assert pr.status == "in_progress"
    assert pr.erasure_check["hits"] == ["test.stubborn: a copy in the test store"]
    assert "receipt" not in pr.result
    job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
    assert job.status == DurableJob.Status.PENDING  # the sweeper tries again, then gives up
    assert len(job.progress["sweeps"]) == 1  # every handler ran once more before giving up
    assert "verification" in pr.last_error


def test_the_table_scan_finds_a_key_left_in_any_column(tenant, oncommit):
    from apps.privacy.services import check_subject

    key = seed_subject(tenant, "alice@example.com")
    AuditEvent.objects.for_tenant(tenant).update(details={"leak": f"x{key}y"})
    hits = check_subject(tenant=tenant, subject_key=key).hits
    assert "table audit_auditevent.details" in hits
    assert "table events_event.subject_key" in hits
    assert not any("privacy_privacyrequest" in h for h in hits)


@pytest.mark.parametrize("kind", ["access", "erasure"])
def test_an_unverified_request_releases_and_erases_nothing(tenant, oncommit, kind):
    key = seed_subject(tenant, "alice@example.com", events=2)
    pr = make_request(tenant, kind, "alice@example.com", channel="portal", verified=False)
    assert pr.status == "received"
    job = FulfilmentJob.objects.create(tenant=tenant, privacy_request=pr)
    run_fulfilment(job=job)
    job.refresh_from_db()
    assert job.status == DurableJob.Status.FAILED
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == 2
    assert not DataExport.all_tenants.exists()
    assert not ErasureTombstone.all_tenants.exists()
    pr.refresh_from_db()
    assert pr.status == "received"


def test_a_rejected_request_cancels_its_job(tenant, oncommit):
    from apps.privacy.services import reject_privacy_request

    pr = make_request(tenant, "access", "alice@example.com")  # job enqueued, not run
    job = FulfilmentJob.objects.for_tenant(tenant).get(privacy_request=pr)
    reject_privacy_request(privacy_request=pr, reason="Manifestly unfounded.")
    job.refresh_from_db()
    assert job.status == DurableJob.Status.FAILED
    run_fulfilment(job=job)
    assert not DataExport.all_tenants.exists()


def test_the_receipt_names_the_model_versions_describers_report(tenant, oncommit):
    seed_subject(tenant, "alice@example.com")
    models = throwaway_store("test.models", order=10,
                             describe_erasure=lambda t, key: {"model_versions": ["v7", "v8"]})
    with declared(models), oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    pr.refresh_from_db()
    assert pr.result["receipt"]["model_versions"][:2] == ["v7", "v8"]
    assert pr.result["receipt"]["details"]["test.models"] == {"model_versions": ["v7", "v8"]}


def test_the_verifier_finds_the_subject_in_caches_and_export_files(tenant, oncommit):
    from django.core.cache import cache

    from apps.privacy.services import check_subject

    key = seed_subject(tenant, "alice@example.com")
    with oncommit():
        make_request(tenant, "access", "alice@example.com")
    cache.set("recs", {"for": key})
    hits = check_subject(tenant=tenant, subject_key=key).hits
    assert "privacy.caches: cache 'default'" in hits
    assert any(h.startswith("privacy.export_files: export ") for h in hits)
    assert any(h.startswith("privacy.export_files: export files of request") for h in hits)
    cache.clear()
    with oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    pr.refresh_from_db()
    assert pr.status == "completed"
    assert check_subject(tenant=tenant, subject_key=key).hits == []
