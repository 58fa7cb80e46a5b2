"""Row-level security is the backstop behind tenant scoping (apps/tenants/rls.py, README
"Security"): with the application's role and a tenant scope, a raw ``SELECT`` of another
tenant's rows returns nothing, from every tenant-owned table. PostgreSQL only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.events.models import Event
from apps.tenants.models import ApiKey, Tenant
from apps.tenants.rls import (
    POLICY_NAME,
    SETTING,
    check_database_role,
    ensure_row_level_security,
    tables_missing_row_level_security,
)
from apps.tenants.scoping import tenant_owned_models, tenant_scope
from tests.factories.privacy import make_request, seed_subject
from tests.factories.retention import audit_entry_at, model_version, tombstone_at
from tests.factories.tenants import MembershipFactory, TenantFactory, make_api_key

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="row-level security is PostgreSQL's; SQLite has none"),
    pytest.mark.django_db,
]

#: Tables the populated tenants must have rows in, so that "nothing" means something.
POPULATED_AT_LEAST = {"tenants_apikey", "tenants_membership", "consent_consentrecord",
                      "events_event", "events_item", "privacy_privacyrequest",
                      "audit_auditevent", "privacy_erasuretombstone",
                      "modeling_modelversion"}


def tables() -> dict[str, str]:
    return {m._meta.db_table: m._meta.get_field("tenant").column
            for m in tenant_owned_models() if m._meta.managed and not m._meta.proxy}


def populate(tenant: Tenant) -> None:
    MembershipFactory(tenant=tenant)
    make_api_key(tenant)
    key = seed_subject(tenant, "alice@example.com")
    make_request(tenant, "erasure", "bob@example.com")
    audit_entry_at(tenant, timezone.now())
    tombstone_at(tenant, key, timezone.now())
    model_version(tenant, 1)


@pytest.fixture
def app_role(db) -> Callable[[], AbstractContextManager[None]]:
    """Statements in the block run as a role that row-level security binds. CI connects as
    a superuser, which security never binds: then a throwaway role (like the deployment's
    application role: no superuser, no BYPASSRLS, not the owner), created inside the
    test's transaction and gone with its rollback."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                       "WHERE rolname = current_user")
        exempt = cursor.fetchone()[0]
        role = f"discreet_rls_probe_{os.getpid()}"
        if exempt:
            cursor.execute(f"CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS")
            cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "
                           f"public TO {role}")
            cursor.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")

    @contextmanager
    def as_app_role() -> Iterator[None]:
        if not exempt:  # already bound (the suite runs as a non-superuser owner: FORCE)
            yield
            return
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {role}")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET ROLE")

    return as_app_role


@pytest.fixture
def two_tenants(db) -> tuple[Tenant, Tenant]:
    a, b = TenantFactory(), TenantFactory()
    populate(a)
    populate(b)
    return a, b


def count_rows(table: str, column: str, tenant: Tenant | None = None) -> int:
    """A raw ``SELECT``: nothing of the application's scoping stands in its way."""
    quote = connection.ops.quote_name
    sql = f"SELECT count(*) FROM {quote(table)}"  # names from the registry
    params: list[int] = []
    if tenant is not None:
        sql += f" WHERE {quote(column)} = %s"
        params.append(tenant.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def test_every_tenant_owned_table_has_forced_security_and_the_policy():
    assert tables_missing_row_level_security(connection) == []
    assert set(tables()) >= POPULATED_AT_LEAST


def test_a_tenant_owned_table_without_the_policy_is_caught_and_repaired(db):
    connection.cursor().execute(f'DROP POLICY "{POLICY_NAME}" ON "events_event"')
    assert tables_missing_row_level_security(connection) == ["events_event"]
    assert ensure_row_level_security(connection) == ["events_event"]
    assert tables_missing_row_level_security(connection) == []
    connection.cursor().execute('ALTER TABLE "events_item" NO FORCE ROW LEVEL SECURITY')
    assert tables_missing_row_level_security(connection) == ["events_item"]


def test_with_a_tenant_set_a_raw_select_of_another_tenants_rows_returns_nothing(
        two_tenants, app_role):
    a, b = two_tenants
    columns = tables()
    with app_role():
        owned_by_a = {t: count_rows(t, c, a) for t, c in columns.items()}
        owned_by_b = {t: count_rows(t, c, b) for t, c in columns.items()}
        with tenant_scope(a):
            leaked = {t: n for t, c in columns.items() if (n := count_rows(t, c, b))}
            visible = {t: count_rows(t, c) for t, c in columns.items()}
    assert {t for t, n in owned_by_b.items() if n} >= POPULATED_AT_LEAST  # B's rows exist
    assert leaked == {}
    assert visible == owned_by_a  # all of A's, nothing else


def test_the_orm_bypass_is_bound_too_inside_a_scope(two_tenants, app_role):
    a, b = two_tenants
    with app_role(), tenant_scope(a):
        assert not Event.all_tenants.filter(tenant=b).exists()
        assert set(ApiKey.all_tenants.values_list("tenant_id", flat=True)) == {a.pk}


def test_a_scope_over_several_tenants_sees_those_only(two_tenants, app_role):
    a, b = two_tenants
    c = TenantFactory()
    populate(c)
    with app_role(), tenant_scope(a, c):
        assert set(Event.all_tenants.values_list("tenant_id", flat=True)) == {a.pk, c.pk}


def test_the_policy_reads_the_setting_once_per_query_not_once_per_row(two_tenants, app_role):
    """The setting's parts are init plans: evaluated once per statement, so a full read of
    the events (training) pays no per-row policy cost, and the tenant filter can use an
    index."""
    a, _ = two_tenants
    quote = connection.ops.quote_name
    with app_role(), tenant_scope(a), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN SELECT * FROM {quote(Event._meta.db_table)}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert plan.count("InitPlan") == 2, plan
    assert "current_setting" not in plan.split("InitPlan")[0], plan  # not in the row filter


def test_writes_to_another_tenants_rows_are_refused(two_tenants, app_role):
    a, b = two_tenants
    with app_role(), tenant_scope(a), connection.cursor() as cursor:
        cursor.execute("UPDATE tenants_apikey SET name = 'taken' WHERE tenant_id = %s",
                       [b.pk])
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM events_event WHERE tenant_id = %s", [b.pk])
        assert cursor.rowcount == 0
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            cursor.execute(
                "INSERT INTO tenants_apikey (created_at, updated_at, tenant_id, name, prefix,"
                " key_hash, scopes, revoked_at, last_used_at, created_by_id)"
                " SELECT now(), now(), %s, 'x', 'rlsprobe', key_hash, scopes, NULL, NULL,"
                " NULL FROM tenants_apikey WHERE tenant_id = %s LIMIT 1", [b.pk, a.pk])
    assert ApiKey.objects.for_tenant(b).exclude(name="taken").exists()
    assert Event.objects.for_tenant(b).exists()


def test_outside_any_scope_the_application_sees_every_tenant(two_tenants, app_role):
    """The explicit bypass: unscoped code (sweepers, superuser admin, commands) crosses
    tenants on purpose, and says so in the setting (``all``)."""
    a, b = two_tenants
    with app_role():
        assert count_rows("events_event", "tenant_id", a) > 0
        assert count_rows("events_event", "tenant_id", b) > 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting(%s)", [SETTING])
            assert cursor.fetchone()[0] == "all"


def test_a_session_without_the_setting_sees_no_tenant_rows(two_tenants, app_role):
    """Fail closed: a session of the role the application did not set up (psql, a raw
    driver connection) sees no row of any tenant-owned table."""
    columns = tables()
    with app_role():
        connection.ensure_connection()
        with connection.connection.cursor() as raw:  # below Django: no setting is made
            raw.execute(f"RESET {SETTING}")
            seen = {}
            for table in columns:
                raw.execute(f'SELECT count(*) FROM "{table}"')
                seen[table] = raw.fetchone()[0]
        connection._tenant_setting = None  # the session's value is not the backend's now
    assert set(seen.values()) == {0}


def test_the_setting_survives_a_rolled_back_savepoint(two_tenants, app_role):
    """A rollback undoes a ``set_config`` made inside it: the backend must notice and set
    the scope's value again rather than trust what it set last."""
    a, b = two_tenants
    with app_role(), tenant_scope(a):
        with suppress(RolledBack), transaction.atomic():
            inside = count_rows("events_event", "tenant_id", b)  # set here, then undone
            raise RolledBack
        after = count_rows("events_event", "tenant_id", b)
    assert (inside, after) == (0, 0)


class RolledBack(Exception):  # noqa: N818
    pass


def test_the_deploy_check_warns_when_the_role_escapes_the_policies(app_role):
    with app_role():
        assert check_database_role(databases=["default"]) == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                       "WHERE rolname = current_user")
        exempt = cursor.fetchone()[0]
    warnings = [w.id for w in check_database_role(databases=["default"])]
    assert warnings == (["tenants.W010"] if exempt else [])


@pytest.mark.django_db(transaction=True)
def test_a_transaction_still_opens_with_set_transaction():
    """``SET TRANSACTION`` must be a transaction's first statement: the setting waits for
    the next one (the training snapshot reader opens its transactions so)."""
    tenant = TenantFactory()
    with tenant_scope(tenant), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SELECT current_setting('transaction_isolation'), current_setting(%s)",
                       [SETTING])
        assert cursor.fetchone() == ("repeatable read", str(tenant.pk))


def test_the_key_lookup_finds_every_tenants_key_whatever_the_session_holds(db, app_role):
    """The API-key lookup runs under the setting the session holds from its previous
    request (issue 18): a key of that tenant is found without a set_config round trip;
    any other tenant's key, hidden by the policy there, is found by the retry under all."""
    from apps.tenants.services import authenticate_api_key

    a, b = TenantFactory(), TenantFactory()
    _, key_a = make_api_key(a)
    _, key_b = make_api_key(b)
    with app_role():
        for raw in (key_a, key_b):  # last_used_at written now, not in the probes below
            authenticate_api_key(raw)
        for previous, raw, owner in [(a, key_a, a), (a, key_b, b), (b, key_a, a),
                                     (b, key_b, b)]:
            with tenant_scope(previous):
                assert ApiKey.objects.count() == 1  # the session now holds previous's id
            assert connection._tenant_setting == str(previous.pk)
            api_key = authenticate_api_key(raw)
            assert api_key is not None
            assert api_key.tenant == owner
            # Found under previous's id: nothing was set. Else the retry set "all".
            assert connection._tenant_setting == (str(previous.pk) if owner == previous
                                                  else "all")
        with tenant_scope(a):
            ApiKey.objects.count()
        assert authenticate_api_key(key_b.replace(key_b[-4:], "xxxx")) is None
