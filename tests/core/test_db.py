"""The tables probed key by key (apps.core.db.fetch_rows_matching) offer the planner no index
that would make a probe scan a whole tenant: with statistics that predate a new tenant's rows,
PostgreSQL was seen probing an index on tenant_id alone once per key (a scan per key)."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.consent.models import ConsentState, SubjectState
from apps.events.models import Item

PROBED = [(SubjectState, "subject_key"), (ConsentState, "subject_key"), (Item, "external_id")]


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "field"), PROBED)
def test_every_index_a_probe_could_use_leads_to_the_key(model, field):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    filtered = {"tenant_id", "purpose_id"}  # what the probes filter on besides the key
    for name, info in constraints.items():
        columns = info["columns"] or []
        if not (info["index"] or info["unique"]) or not columns or columns[0] not in filtered:
            continue
        assert field in columns[:2], f"{table}.{name} {columns}: a probe could scan with it"
