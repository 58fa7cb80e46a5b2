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


def test_a_precompiled_lookup_gives_the_orms_objects(tenant, other_tenant):
    """The API-key lookup compiled once per process (issue 18) returns what the ORM's own
    queryset returns: the same fields, converted the same way (JSON settings, datetimes),
    with the same select_related rows attached; per thread, like Django's connections."""
    import threading

    from apps.tenants.models import ApiKey
    from apps.tenants.services import _API_KEY_BY_PREFIX
    from tests.factories.tenants import make_api_key

    tenant.settings = {"model_min_support": 3, "nested": {"a": [1, 2]}}
    tenant.save(update_fields=["settings"])
    api_key, _ = make_api_key(tenant, ["recommendations:read"])
    make_api_key(other_tenant)
    expected = (ApiKey.all_tenants.select_related("tenant", "tenant__serving_state")
                .get(prefix=api_key.prefix))
    for _ in range(2):  # compiled on the first call, reused on the second
        found = _API_KEY_BY_PREFIX.first(api_key.prefix)
        assert found == expected
        assert ({f.attname: getattr(found, f.attname) for f in ApiKey._meta.concrete_fields}
                == {f.attname: getattr(expected, f.attname)
                    for f in ApiKey._meta.concrete_fields})
        assert "tenant" in found._state.fields_cache
        assert found.tenant.settings == {"model_min_support": 3, "nested": {"a": [1, 2]}}
        assert found.tenant.created_at == expected.tenant.created_at
        assert "serving_state" in found.tenant._state.fields_cache
    assert _API_KEY_BY_PREFIX.first("no-such-prefix") is None
    if connection.vendor != "postgresql":
        return  # another thread cannot share SQLite's in-memory test database

    compiled = []

    def in_a_thread() -> None:
        _API_KEY_BY_PREFIX.first("no-such-prefix")
        compiled.append(_API_KEY_BY_PREFIX._local.compiled)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert compiled[0] is not _API_KEY_BY_PREFIX._local.compiled


def test_the_hot_statements_are_prepared_on_postgresql(tenant):
    """The key lookup and the consent check of every API request are prepared on the
    connection after psycopg's ``prepare_threshold`` runs (DATABASE_PREPARE_THRESHOLD,
    default 5): PostgreSQL stops parsing and planning them (issue 18). Prepared, they still
    answer what the ORM answers; Django's own client-binding cursors are never prepared."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    from apps.consent.selectors import get_subject_consent_views
    from apps.tenants.models import ApiKey
    from apps.tenants.services import _API_KEY_BY_PREFIX
    from tests.factories.tenants import make_api_key

    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] == 5
    api_key, _ = make_api_key(tenant, ["recommendations:read"])
    expected = (ApiKey.all_tenants.select_related("tenant", "tenant__serving_state")
                .get(prefix=api_key.prefix))
    first_views = get_subject_consent_views(tenant=tenant, subject_keys=["a" * 64])
    for _ in range(7):
        found = _API_KEY_BY_PREFIX.first(api_key.prefix)
        assert found == expected
        assert found.tenant.settings == expected.tenant.settings
        assert get_subject_consent_views(tenant=tenant, subject_keys=["a" * 64]) == first_views
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('"tenants_apikey"' in sql for sql in prepared), prepared
    assert any('"consent_subjectstate"' in sql for sql in prepared), prepared
    assert not any("pg_prepared_statements" in sql for sql in prepared)
