"""What a subject is told about the recommendation models: the portal's "my data" and the
access export list the same model versions (one selector behind both), and the export
names the algorithm that serves, as the model bundle does."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.storage import default_storage

from apps.consent.services import record_consents
from apps.modeling.models import ModelVersion
from apps.modeling.recommenders import get_recommender
from apps.modeling.services import serving, train_model
from apps.privacy.models import DataExport, PrivacyRequest
from apps.privacy.services import sign_portal_token
from tests.factories.modeling import configure, planted_dataset
from tests.factories.privacy import make_request

SUBJECT = "subject-0-0"  # a subject of the planted data set (raw id)


@pytest.fixture(autouse=True)
def _fresh_serving_cache() -> Iterator[None]:
    serving.clear_cache()
    yield
    serving.clear_cache()


def base(tenant) -> str:
    return f"/privacy/{tenant.slug}/"


def sign_in(portal, tenant) -> None:
    token = sign_portal_token(tenant=tenant, subject=SUBJECT, email="s00@example.com")
    assert portal.get(base(tenant) + "start", {"token": token}).status_code == 302


def my_data_models(portal, tenant) -> list[int]:
    """The model versions the "my data" page lists, from its models row."""
    page = portal.get(base(tenant) + "my-data")
    assert page.status_code == 200
    (row,) = [r for r in re.findall(r"<tr>(.*?)</tr>", page.content.decode(), re.S)
              if re.sub(r"<[^>]+>", "", r).strip()
              .startswith("recommendation models trained on your activity")]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    listed = [int(n) for n in re.findall(r"model v(\d+)", cells[1])]
    count = cells[1].split(" ", 1)[0]
    assert count == str(len(listed)), row
    return listed


def export_document(portal, tenant, oncommit) -> dict[str, Any]:
    """An access request made from the portal session, fulfilled, and its export.json."""
    with oncommit():
        made = portal.post(base(tenant) + "request", {"kind": "access", "regime": "gdpr"})
    assert made.status_code == 302
    pr = PrivacyRequest.objects.for_tenant(tenant).filter(kind="access").latest("received_at")
    assert pr.status == "completed"
    export = DataExport.objects.for_tenant(tenant).get(privacy_request=pr)
    with default_storage.open(export.path, "rb") as handle:
        return json.loads(zipfile.ZipFile(io.BytesIO(handle.read())).read("export.json"))


def export_models(document: dict[str, Any]) -> list[int]:
    (models,) = [c for c in document["categories"] if c["handler"] == "modeling.artifacts"]
    return [v["model_version"] for v in models["data"]["model_versions"]]


@pytest.fixture
def planted(tenant):
    configure(tenant)
    return planted_dataset(tenant)


def test_my_data_and_the_export_agree_for_a_subject_in_v1_only(planted, portal, oncommit):
    tenant = planted.tenant
    train_model(tenant=tenant)
    # Level "off": their interactions go and the live model forgets them at once; v1
    # keeps the lineage (it was trained on them) while its artifact is stored.
    record_consents(tenant=tenant, subject_key=planted.keys[SUBJECT], decisions={},
                    level="off")
    train_model(tenant=tenant)
    assert ModelVersion.objects.for_tenant(tenant).count() == 2
    sign_in(portal, tenant)
    assert my_data_models(portal, tenant) == [1]
    assert export_models(export_document(portal, tenant, oncommit)) == [1]


def test_my_data_and_the_export_agree_for_a_subject_in_v1_and_v2(planted, portal, oncommit):
    tenant = planted.tenant
    train_model(tenant=tenant)
    train_model(tenant=tenant)
    sign_in(portal, tenant)
    assert my_data_models(portal, tenant) == [1, 2]
    assert export_models(export_document(portal, tenant, oncommit)) == [1, 2]


@pytest.mark.django_db(transaction=True)  # commits for real: files go when the step commits
def test_my_data_and_the_export_agree_for_an_erased_subject(planted, portal, oncommit):
    tenant = planted.tenant
    train_model(tenant=tenant)
    train_model(tenant=tenant)
    with oncommit():
        erasure = make_request(tenant, "erasure", SUBJECT)
    erasure.refresh_from_db()
    assert erasure.status == "completed", erasure.erasure_check["hits"]
    assert erasure.result["receipt"]["model_versions"] == ["v1", "v2"]
    sign_in(portal, tenant)  # the same person comes back
    assert my_data_models(portal, tenant) == []
    assert export_models(export_document(portal, tenant, oncommit)) == []


@pytest.mark.parametrize("algorithm", ["als", "bm25"])
def test_the_export_names_the_algorithm_that_serves(tenant, portal, oncommit, api,
                                                     algorithm):
    configure(tenant, model_algorithms=[algorithm])
    planted_dataset(tenant)
    train_model(tenant=tenant)
    sign_in(portal, tenant)
    document = export_document(portal, tenant, oncommit)
    bundle = api.get("/api/v1/model-bundle").json()
    assert document["recommender"] == {"model_version": 1, "algorithm": algorithm,
                                       "label": get_recommender(algorithm).label}
    assert bundle["algorithm"] == algorithm
    assert str(get_recommender(algorithm).logic) in document["recommender_logic"]
    other = "bm25" if algorithm == "als" else "als"
    assert str(get_recommender(other).logic) not in document["recommender_logic"]
    lineage = [c for c in document["categories"] if c["handler"] == "modeling.artifacts"]
    assert [v["algorithm"] for v in lineage[0]["data"]["model_versions"]] == [algorithm]


def test_without_a_model_the_export_says_none_serves(tenant, portal, oncommit):
    sign_in(portal, tenant)
    document = export_document(portal, tenant, oncommit)
    assert document["recommender"] is None
    assert "No recommendation model is in use yet" in document["recommender_logic"]
