"""Queries compiled once: the same rows, converted the same way, as the ORM's own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.consent.models import SubjectState
from apps.core.compiled import run_compiled

FIELDS = ("subject_key", "level", "restricted", "objected", "objected_at")


def _flags(tenant_id: int, key: str):
    return (SubjectState.objects.for_tenant(tenant_id).filter(subject_key=key).order_by()
            .values_list(*FIELDS))


def test_later_calls_bind_their_own_arguments_and_convert_like_the_orm(tenant, other_tenant):
    at = timezone.now() - timedelta(days=3)
    SubjectState.objects.create(tenant=tenant, subject_key="a" * 64, level="full",
                                restricted=True)
    SubjectState.objects.create(tenant=tenant, subject_key="b" * 64, objected=True,
                                objected_at=at)
    SubjectState.objects.create(tenant=other_tenant, subject_key="a" * 64, level="off")
    for tenant_id, key in [(tenant.pk, "a" * 64), (tenant.pk, "b" * 64),
                           (other_tenant.pk, "a" * 64), (other_tenant.pk, "b" * 64)]:
        compiled = run_compiled("test.flags", _flags, tenant_id, key)
        assert compiled == list(_flags(tenant_id, key))
    (_, _, restricted, objected, objected_at), = run_compiled(
        "test.flags", _flags, tenant.pk, "b" * 64)
    assert (restricted, objected, objected_at) == (False, True, at)  # bool, aware datetime


def test_a_compiled_query_is_one_query(tenant):
    run_compiled("test.flags", _flags, tenant.pk, "c" * 64)
    with CaptureQueriesContext(connection) as captured:
        assert run_compiled("test.flags", _flags, tenant.pk, "c" * 64) == []
    assert len(captured.captured_queries) == 1


@pytest.mark.parametrize("build", [
    lambda tenant_id, key: SubjectState.objects.for_tenant(tenant_id).values_list("level"),
    lambda tenant_id, key: SubjectState.all_tenants.filter(tenant_id=tenant_id, subject_key=key,
                                                       level=key).values_list("level"),
])
def test_an_argument_not_bound_exactly_once_is_refused(db, build):
    with pytest.raises(ValueError, match="exactly once"):
        run_compiled(f"test.refused.{id(build)}", build, 1, "k")
