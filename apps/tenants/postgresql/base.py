"""Django's PostgreSQL backend, keeping ``discreet.tenant_ids`` in step with the tenant
scope (:mod:`apps.tenants.rls`).

Before every statement sent through a Django cursor (the ORM, ``connection.cursor()``,
:func:`apps.core.db.binding_cursor`), an execute wrapper compares the value the scope
wants with the value last set on this session and, when they differ, sets it first with
``set_config(..., false)``: session-wide, so it holds across autocommit statements and
transactions alike, and costs a round trip only when the scope changes.

A rollback (of the transaction or to a savepoint) undoes a ``set_config`` made inside it,
so after one the session's value is unknown again and the next statement sets it. A new
connection starts unknown too. Transaction-control statements pass untouched (the
setting follows with the next statement).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.backends.postgresql import base

#: Statements that pass untouched: in an aborted transaction ``ROLLBACK TO SAVEPOINT`` must
#: come next, and ``SET TRANSACTION`` (isolation, snapshot) must be a transaction's first.
_TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK", "COMMIT", "BEGIN",
                        "START TRANSACTION", "END", "SET TRANSACTION")


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tenant_setting: str | None = None  # in force on the session; None: unknown
        # Inside rls.whatever_scope_is_set(): statements run under whatever value the
        # session holds when it is known (see there); set only when it is unknown.
        self.tenant_setting_as_is = False
        self._wanted_setting: Callable[[], str] | None = None
        # First, so that the ``execute_wrapper()`` context manager, which pops the last
        # one, never removes it.
        self.execute_wrappers.insert(0, self._keep_tenant_setting)

    def _keep_tenant_setting(self, execute: Callable[..., Any], sql: Any, params: Any,
                             many: bool, context: dict[str, Any]) -> Any:
        if self._wanted_setting is None:  # imported late: the backend loads before models
            from apps.tenants.rls import tenant_setting_value

            self._wanted_setting = tenant_setting_value
        wanted = self._wanted_setting()
        if self.tenant_setting_as_is and self._tenant_setting is not None:
            wanted = self._tenant_setting
        if wanted != self._tenant_setting and not (
                isinstance(sql, str)
                and sql[:24].lstrip().upper().startswith(_TRANSACTION_CONTROL)):
            from apps.tenants.rls import SETTING

            with self.wrap_database_errors, self.connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, %s, false)", [SETTING, wanted])
            self._tenant_setting = wanted
        return execute(sql, params, many, context)

    def init_connection_state(self) -> None:
        self._tenant_setting = None
        super().init_connection_state()

    def _rollback(self) -> None:
        self._tenant_setting = None
        super()._rollback()

    def _savepoint_rollback(self, sid: str) -> None:
        self._tenant_setting = None
        super()._savepoint_rollback(sid)

    def _close(self) -> None:
        self._tenant_setting = None
        super()._close()
