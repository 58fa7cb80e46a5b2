"""A new store of subject data needs one declaration and nothing else: access requests
export it, "my data" lists it, erasure erases and verifies it (issue #13 acceptance)."""

from __future__ import annotations

import io
import json
import zipfile

from django.core.files.storage import default_storage

from apps.core.subject_data import RetentionRule, not_applicable
from apps.privacy.models import DataExport
from apps.privacy.selectors import get_subject_data_summary
from tests.factories.privacy import make_request, seed_subject
from tests.subject_data import declared, throwaway_store


class Notebook:
    """A store outside the tables: notes per (tenant, subject key)."""

    def __init__(self) -> None:
        self.notes: dict[tuple[int, str], list[str]] = {}

    def export(self, tenant, subject_key: str) -> list[dict[str, str]]:
        return [{"note": n} for n in self.notes.get((tenant.pk, subject_key), [])]

    def erase(self, tenant, subject_key: str) -> int:
        return len(self.notes.pop((tenant.pk, subject_key), []))

    def verify(self, tenant, subject_key: str) -> list[str]:
        return ["a note"] if (tenant.pk, subject_key) in self.notes else []


def _store(notebook: Notebook):
    return throwaway_store(
        "test.notebook", category="notes about you", order=120,
        export=notebook.export, erase=notebook.erase, verify_erased=notebook.verify,
        retention=RetentionRule(
            category="inactive_subjects",
            text=lambda tenant, period: "Notes are kept while you use the service.",
            expiry=not_applicable("Removed with inactive subjects."), dated=False))


def test_an_access_request_exports_a_newly_declared_store(tenant, oncommit):
    key = seed_subject(tenant, "alice@example.com")
    notebook = Notebook()
    notebook.notes[(tenant.pk, key)] = ["likes tea", "dislikes spam"]
    with declared(_store(notebook)):
        with oncommit():
            pr = make_request(tenant, "access", "alice@example.com")
        summary = {s.handler: s for s in get_subject_data_summary(tenant=tenant,
                                                                  subject_key=key)}
    pr.refresh_from_db()
    assert pr.status == "completed"
    export = DataExport.objects.for_tenant(pr.tenant_id).get(privacy_request=pr)
    with default_storage.open(export.path, "rb") as handle:
        archive = zipfile.ZipFile(io.BytesIO(handle.read()))
    document = json.loads(archive.read("export.json"))
    notes = next(c for c in document["categories"] if c["handler"] == "test.notebook")
    assert notes["category"] == "notes about you"
    assert notes["data"] == [{"note": "likes tea"}, {"note": "dislikes spam"}]
    assert notes["retention"] == {"text": "Notes are kept while you use the service.",
                                  "days": None}
    assert "test.notebook.csv" in archive.namelist()
    assert summary["test.notebook"].category == "notes about you"
    assert summary["test.notebook"].count is None  # not a table


def test_an_erasure_erases_and_verifies_a_newly_declared_store(tenant, oncommit):
    key = seed_subject(tenant, "alice@example.com")
    notebook = Notebook()
    notebook.notes[(tenant.pk, key)] = ["likes tea"]
    with declared(_store(notebook)), oncommit():
        pr = make_request(tenant, "erasure", "alice@example.com")
    pr.refresh_from_db()
    assert pr.status == "completed", pr.last_error
    assert notebook.notes == {}
    counts = {c["handler"]: c["count"] for c in pr.result["receipt"]["categories"]}
    assert counts["test.notebook"] == 1
    assert "test.notebook" in pr.erasure_check["places"]


def test_an_erasure_a_declared_store_survives_is_not_completed(tenant, oncommit):
    key = seed_subject(tenant, "alice@example.com")
    notebook = Notebook()
    notebook.notes[(tenant.pk, key)] = ["likes tea"]
    stubborn = _store(notebook)
    with declared(throwaway_store(stubborn.name, category=stubborn.category,
                                  export=notebook.export, verify_erased=notebook.verify)
                  ), oncommit():  # its erase forgets nothing
        pr = make_request(tenant, "erasure", "alice@example.com")
    pr.refresh_from_db()
    assert pr.status == "in_progress"
    assert pr.erasure_check["hits"] == ["test.notebook: a note"]
