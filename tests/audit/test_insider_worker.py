"""Issue 14, point 4 on PostgreSQL with a real worker: beat's export task and the nightly
verification job, both run by the worker, against a chain an insider truncated."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.audit import services as audit
from apps.audit.heads import read_heads
from apps.audit.models import AuditChainHead, AuditChainVerification, AuditEvent
from apps.core.jobs import DurableJob
from platform_site.celery import app
from tests.factories.tenants import TenantFactory
from tests.integration_support import wait_for

pytestmark = pytest.mark.integration


def _done(job_id: int) -> bool:
    return AuditChainVerification.all_tenants.get(pk=job_id).status == DurableJob.Status.SUCCEEDED


def test_the_worker_exports_heads_and_its_verification_names_a_truncation(live_worker):
    tenant = TenantFactory()  # its configuration (django-auditlog) is anchored first
    entries = [audit.record(tenant, "test.action", None, ("thing", i)) for i in range(10)]
    last = entries[-1].sequence
    app.send_task("apps.audit.tasks.export_audit_heads_task")
    wait_for(lambda: [h.sequence for h in read_heads(tenant.pk)] == [last])

    intact = audit.request_chain_verification(tenant=tenant)
    wait_for(lambda: _done(intact.pk))
    intact.refresh_from_db()
    assert (intact.intact, intact.checked_entries) == (True, last)

    with connection.cursor() as cursor:  # an insider deletes the last 3 and rolls the head back
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} "
                       "WHERE tenant_id = %s AND sequence > %s", [tenant.pk, entries[6].sequence])
        cursor.execute(f"UPDATE {AuditChainHead._meta.db_table} SET last_sequence = %s, "
                       "last_hash = %s WHERE tenant_id = %s",
                       [entries[6].sequence, entries[6].entry_hash, tenant.pk])
    job = audit.request_chain_verification(tenant=tenant)
    wait_for(lambda: _done(job.pk))
    job.refresh_from_db()
    assert (job.intact, job.first_broken_sequence) == (False, entries[7].sequence)
    assert "truncated" in job.problem
