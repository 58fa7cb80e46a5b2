"""The restore drill (issue 14, acceptance): dump the database and the model artifacts,
erase a subject through the real service, restore the dump, ``replay_erasures`` → the
subject is in no table and no artifact, and the erasure check finds 0 hits.

PostgreSQL only, with a real ``pg_dump`` / ``pg_restore`` of the test database (committed
data: a transactional test).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection

from apps.events.models import Event
from apps.modeling.models import ModelVersion
from apps.modeling.services import artifacts_holding_subject, train_model
from apps.privacy.models import ErasureTombstone, PrivacyRequest
from apps.privacy.services import check_subject
from apps.privacy.services.tombstones import read_tombstones
from tests.factories.events import grant_consent
from tests.factories.modeling import add_events, configure, planted_dataset
from tests.factories.privacy import make_request

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="a real pg_dump/pg_restore of the PostgreSQL test database"),
    pytest.mark.skipif(shutil.which("pg_dump") is None or shutil.which("pg_restore") is None,
                       reason="needs the PostgreSQL client tools"),
    pytest.mark.django_db(transaction=True),
]


def _pg(tool: str, *args: str) -> None:
    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    subprocess.run(
        [tool, "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432),
         "-U", db["USER"], "-d", db["NAME"], *args],
        env=env, check=True, capture_output=True, timeout=120)


def _backup_artifacts(tenant) -> dict[str, bytes]:
    paths = [v.artifact_path for v in ModelVersion.objects.for_tenant(tenant)
             if v.artifact_path]
    return {p: default_storage.open(p).read() for p in paths}


def _restore_artifacts(saved: dict[str, bytes]) -> None:
    for path, data in saved.items():
        target = Path(default_storage.path(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def test_an_erasure_survives_the_restore_of_an_older_dump(tenant, settings, tmp_path):
    settings.TOMBSTONE_DIR = tmp_path / "tombstones"
    configure(tenant, model_algorithms=["als"], model_retrain_debounce_seconds=3600)
    planted = planted_dataset(tenant, seed=3)
    key = grant_consent(tenant, "heavy@example.com")
    add_events(tenant, "heavy", planted.groups[0], subject_key=key)
    train_model(tenant=tenant)
    assert artifacts_holding_subject(tenant, key)
    events_before = Event.objects.for_tenant(tenant).filter(subject_key=key).count()

    # The backup: the database and the model artifacts.
    dump = tmp_path / "backup.dump"
    _pg("pg_dump", "-Fc", "--no-owner", "--no-privileges", "-f", str(dump))
    saved_artifacts = _backup_artifacts(tenant)

    # The erasure, through the real service (tasks run eagerly on commit).
    pr = make_request(tenant, "erasure", "heavy@example.com")
    pr.refresh_from_db()
    assert pr.subject_key == key
    assert pr.status == PrivacyRequest.Status.COMPLETED
    assert [r.subject_key for r in read_tombstones(tenant=tenant)] == [key]

    # The restore of the older dump: the subject is back, the tombstone row is not.
    connection.close()
    _pg("pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges",
        "--single-transaction", str(dump))
    _restore_artifacts(saved_artifacts)
    assert Event.objects.for_tenant(tenant).filter(subject_key=key).count() == events_before
    assert artifacts_holding_subject(tenant, key)
    assert not ErasureTombstone.objects.for_tenant(tenant).exists()
    assert not PrivacyRequest.objects.for_tenant(tenant).exists()

    out = io.StringIO()
    call_command("replay_erasures", "--verify", stdout=out)
    assert "replayed 1 erased subject(s)" in out.getvalue()
    assert f"events.event: {events_before} row(s) removed" in out.getvalue()
    assert "re-created 1 tombstone row(s)" in out.getvalue()
    assert "0 hits" in out.getvalue()

    assert not Event.objects.for_tenant(tenant).filter(subject_key=key).exists()
    assert artifacts_holding_subject(tenant, key) == []
    assert check_subject(tenant=tenant, subject_key=key).hits == []
    assert ErasureTombstone.objects.for_tenant(tenant).get().subject_key == key
