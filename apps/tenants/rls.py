"""Row-level security, the database's backstop behind tenant scoping (DESIGN "Tenant
scoping"; README "Security").

On PostgreSQL every tenant-owned table (every :class:`~apps.tenants.scoping.TenantOwnedModel`)
has row-level security enabled *and forced* (so it binds the table owner too) and one
policy, :data:`POLICY_NAME`, for every command::

    (SELECT current_setting('discreet.tenant_ids', true) = 'all')
    OR tenant_id = ANY ((SELECT string_to_array(<the setting unless 'all'>, ',')::bigint[]))

(the setting's parts as scalar subqueries: read once per statement, not once per row)

The per-session setting ``discreet.tenant_ids`` (:data:`SETTING`) holds

* the ids of the tenants of the current scope (``"3"``, ``"3,7"``), inside a tenant scope
  (an API request, a member's admin request, a task with a ``tenant_id``): rows of any
  other tenant are invisible, cannot be updated or deleted, and cannot be inserted;
* ``all`` (:data:`ALL_TENANTS`) outside any scope, where the application crosses tenants
  on purpose or names its tenant itself (beat sweepers, superuser admin, API-key lookup
  before the tenant is known, management commands, migrations);
* nothing, in a session the application did not set up (``psql``, another client): the
  policy then shows no row at all, so the backstop fails closed.

The application keeps the setting in step with the scope by itself: its PostgreSQL
backend (:mod:`apps.tenants.postgresql`) checks before every statement whether the
session's value still matches :func:`current_tenant_ids` and, when not, sets it first (one
extra round trip per scope change, none per query).

Superusers and roles with ``BYPASSRLS`` are never subject to row-level security, so the
application must connect as a role that is neither (README "Security";
:func:`check_database_role` warns). SQLite has no row-level security: there the ORM's
scoping is the only line.

The policies are (re)applied after every ``migrate`` (:func:`ensure_row_level_security`,
connected to ``post_migrate``), so a new tenant-owned table gets its policy without a
hand-written migration; a test fails when one lacks it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.core import checks
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from apps.tenants.scoping import current_tenant_ids, tenant_owned_models

SETTING = "discreet.tenant_ids"
ALL_TENANTS = "all"
#: Versioned: a changed expression gets a new name, and older policies of ours are dropped.
POLICY_NAME = "discreet_tenant_isolation_v2"
_POLICY_PREFIX = "discreet_tenant_isolation"


def tenant_setting_value() -> str:
    """What :data:`SETTING` must hold for the code running now."""
    tenant_ids = current_tenant_ids()
    if tenant_ids is None:
        return ALL_TENANTS
    return ",".join(str(tenant_id) for tenant_id in sorted(tenant_ids))


@contextmanager
def whatever_scope_is_set() -> Iterator[None]:
    """Run a lookup that crosses tenants (outside any scope) under the value the session
    holds already, when it is known, instead of setting ``all`` first: for a caller that
    repeats the lookup under ``all`` whenever it finds nothing (row-level security only
    ever hides rows, so a row found under a narrower value is the row ``all`` finds).

    The API-key lookup of every API request (issue 18): a web process's connection holds
    the scope of its previous request, most often the same tenant's, so the key is found
    without two ``set_config`` round trips per request (to ``all`` for the lookup, back to
    the tenant for the request's own statements)."""
    connection = connections["default"]
    if connection.vendor != "postgresql" or current_tenant_ids() is not None:
        yield
        return
    connection.tenant_setting_as_is = True
    try:
        yield
    finally:
        connection.tenant_setting_as_is = False


def policy_expression(column: str, quote_name: Any) -> str:
    # The setting's parts are scalar subqueries, so PostgreSQL evaluates them once per query
    # (init plans) instead of once per row: a full read of 1M events cost +65 % server CPU
    # under the per-row form (bench/README.md, issue 15). An unset setting is NULL either
    # way, which admits no row.
    setting = f"current_setting('{SETTING}', true)"
    # CAST: ``= ANY ((SELECT array))`` would compare with each row of the subquery instead.
    return (f"((SELECT {setting} = '{ALL_TENANTS}') OR {quote_name(column)} = ANY (CAST(("
            f"SELECT string_to_array(nullif({setting}, '{ALL_TENANTS}'), ',')::bigint[]) "
            f"AS bigint[])))")


def _protected_tables(connection: BaseDatabaseWrapper) -> dict[str, str]:
    """Table -> tenant column, for every tenant-owned model whose table exists."""
    existing = set(connection.introspection.table_names())
    return {model._meta.db_table: model._meta.get_field("tenant").column
            for model in tenant_owned_models()
            if not model._meta.proxy and model._meta.managed
            and model._meta.db_table in existing}


def tables_missing_row_level_security(connection: BaseDatabaseWrapper) -> list[str]:
    """Tenant-owned tables without forced row-level security or without our policy."""
    tables = _protected_tables(connection)
    if not tables:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
            "WHERE c.relname = ANY(%s) AND c.relrowsecurity AND c.relforcerowsecurity "
            "AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid "
            "AND p.polname = %s AND p.polcmd = '*' AND p.polpermissive)",
            [sorted(tables), POLICY_NAME])
        protected = {row[0] for row in cursor.fetchall()}
    return sorted(set(tables) - protected)


def ensure_row_level_security(connection: BaseDatabaseWrapper) -> list[str]:
    """Give every tenant-owned table that lacks it forced row-level security and the
    current policy (dropping older versions of ours). Idempotent; returns the tables it
    changed. Needs the table owner: it runs from ``migrate``."""
    if connection.vendor != "postgresql":
        return []
    missing = tables_missing_row_level_security(connection)
    tables = _protected_tables(connection)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in missing:
            cursor.execute(
                "SELECT polname FROM pg_policy WHERE polrelid = %s::regclass "
                "AND polname LIKE %s", [quote(table), _POLICY_PREFIX + "%"])
            for (old,) in cursor.fetchall():
                cursor.execute(f"DROP POLICY {quote(old)} ON {quote(table)}")
            expression = policy_expression(tables[table], quote)
            cursor.execute(f"ALTER TABLE {quote(table)} ENABLE ROW LEVEL SECURITY")
            cursor.execute(f"ALTER TABLE {quote(table)} FORCE ROW LEVEL SECURITY")
            cursor.execute(f"CREATE POLICY {quote(POLICY_NAME)} ON {quote(table)} "
                           f"USING {expression} WITH CHECK {expression}")
    return missing


def apply_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` (sent once per app; connected for the tenants app only)."""
    ensure_row_level_security(connections[using])


def check_database_role(app_configs: Sequence[Any] | None = None,
                        databases: Sequence[str] | None = None,
                        **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when the application's role escapes row-level security altogether."""
    warnings = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                           "WHERE rolname = current_user")
            row = cursor.fetchone()
        if row and (row[1] or row[2]):
            warnings.append(checks.Warning(
                f"database {alias!r}: role {row[0]!r} is a superuser or has BYPASSRLS, so "
                f"row-level security does not apply to it",
                hint="Connect the application as a role without SUPERUSER and BYPASSRLS "
                     "(README, 'Security').", id="tenants.W010"))
    return warnings
