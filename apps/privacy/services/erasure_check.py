"""After an erasure: is the subject really gone? (issue 6 acceptance, privacy invariant 1)

:func:`verify_erasure` searches for the subject's pseudonym

* in every text, JSON and binary column of every table (one scan per table, done by the
  database), except the two columns that must keep it as proof: the request record's and
  the tombstone's ``subject_key`` (the stores kept as proof);
* through the erasure verifier of every declared store outside the tables (the modeling
  app's artifacts), and the privacy app's own checks of export files, caches and the Celery
  result backend.

The result is recorded on the request; an erasure is completed only when nothing is found.
Internal ids other apps keep for the subject (e.g. a row index in a model artifact) are
their verifiers' to check.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from apps.core.subject_data import Verifier, subject_data_stores
from apps.privacy.models import DataExport, PrivacyRequest
from apps.tenants.models import Tenant

logger = logging.getLogger("privacy.erasure_check")


def exempt_columns() -> frozenset[tuple[str, str]]:
    """(table, column) pairs that keep the subject key by law: the subject field of every
    store kept as proof (the request record, CCPA regulations §7101, GDPR Art. 5(2); the
    tombstone that replays the erasure)."""
    from django.apps import apps

    exempt = set()
    for store in subject_data_stores():
        if store.kept_as_proof:
            for label in store.models:
                meta = apps.get_model(label)._meta
                exempt.add((meta.db_table, meta.get_field(store.subject_field).column))
    return frozenset(exempt)

# PostgreSQL types that cannot hold a 64-character hex string.
_PG_SKIP_TYPES = frozenset({16, 20, 21, 23, 26, 700, 701, 1082, 1083, 1114, 1184, 1186,
                            1266, 1700, 2950})
_PG_BYTEA = 17
MAX_CACHE_KEYS = 200_000


@dataclass
class ErasureCheck:
    hits: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    checked_at: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"hits": self.hits, "places": self.places, "checked_at": self.checked_at,
                "seconds": round(self.seconds, 4)}


def _table_conditions(cursor: Any, table: str, needle: str,
                      exempt: frozenset[tuple[str, str]]) -> tuple[list[str], list[str], list]:
    description = connection.introspection.get_table_description(cursor, table)
    quote = connection.ops.quote_name
    names, conditions, params = [], [], []
    vendor = connection.vendor
    for column in description:
        if (table, column.name) in exempt:
            continue
        col = quote(column.name)
        if vendor == "postgresql":
            if column.type_code in _PG_SKIP_TYPES:
                continue
            if column.type_code == _PG_BYTEA:
                conditions.append(f"position(%s::bytea in {col}) > 0")
                params.append(needle.encode())
            else:
                conditions.append(f"strpos(CAST({col} AS text), %s) > 0")
                params.append(needle)
        elif vendor == "sqlite":
            conditions.append(f"(instr({col}, %s) > 0 OR instr({col}, %s) > 0)")
            params.extend([needle, needle.encode()])
        else:  # pragma: no cover - other databases: a portable LIKE on the text form
            conditions.append(f"CAST({col} AS CHAR(4000)) LIKE %s")
            params.append(f"%{needle}%")
        names.append(column.name)
    return names, conditions, params


def scan_tables(needle: str, *, exempt: frozenset[tuple[str, str]] | None = None
                ) -> tuple[list[str], int]:
    """``(["table.column", ...] holding needle, number of tables scanned)``, skipping the
    ``exempt`` columns (default: :func:`exempt_columns`). The database does the search: one
    pass per table, nothing is fetched but the per-column counts."""
    exempt = exempt_columns() if exempt is None else exempt
    hits: list[str] = []
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        for table in tables:
            names, conditions, params = _table_conditions(cursor, table, needle, exempt)
            if not conditions:
                continue
            sums = ", ".join(f"SUM(CASE WHEN {c} THEN 1 ELSE 0 END)" for c in conditions)
            # Identifiers come from the database's own catalogue, quoted; values are params.
            cursor.execute(f"SELECT {sums} FROM {connection.ops.quote_name(table)}",  # noqa: S608
                           params)
            row = cursor.fetchone() or ()
            hits.extend(f"{table}.{name}" for name, n in zip(names, row, strict=True) if n)
    return hits, len(tables)


# --- The privacy app's own checks --------------------------------------------------------------


def export_files_verifier(tenant: Tenant, subject_key: str) -> list[str]:
    """No export file of the subject's requests is left, finished or partial."""
    from apps.privacy.services.export import EXPORT_ROOT

    found = []
    references = PrivacyRequest.objects.for_tenant(tenant).filter(
        subject_key=subject_key).values_list("reference", flat=True)
    for reference in references:
        path = f"{EXPORT_ROOT}/{tenant.pk}/{reference}"
        if default_storage.exists(path):
            dirs, files = default_storage.listdir(path)
            if dirs or files:
                found.append(f"export files of request {reference[:8]}")
    live = DataExport.objects.for_tenant(tenant).filter(
        privacy_request__subject_key=subject_key, deleted_at__isnull=True)
    found.extend(f"export {e.pk} not deleted" for e in live)
    return found


def _scan_redis(client: Any, needle: bytes, match: str) -> list[str]:
    found = []
    for index, key in enumerate(client.scan_iter(match=match, count=1000)):
        if index >= MAX_CACHE_KEYS:
            logger.warning("privacy.cache_scan_truncated keys=%s", MAX_CACHE_KEYS)
            break
        if needle in key:
            found.append("key")
            continue
        try:
            value = client.get(key)
        except Exception:  # noqa: S112 - hashes, lists...: not cache entries
            continue
        if value and needle in value:
            found.append("value")
    return found


def caches_verifier(tenant: Tenant, subject_key: str) -> list[str]:
    """Every configured Django cache that can be enumerated (local memory, Redis)."""
    needle = subject_key.encode()
    found = []
    for alias in settings.CACHES:
        cache = caches[alias]
        store = getattr(cache, "_cache", None)
        if isinstance(store, dict):  # LocMemCache: pickled values
            for key, value in list(store.items()):
                if subject_key in str(key) or (isinstance(value, bytes) and needle in value):
                    found.append(f"cache '{alias}'")
                    break
        elif hasattr(store, "get_client"):  # django.core.cache.backends.redis.RedisCache
            try:
                client = store.get_client(None, write=False)
                if _scan_redis(client, needle, "*"):
                    found.append(f"cache '{alias}'")
            except Exception:
                logger.exception("privacy.cache_scan_failed alias=%s", alias)
                found.append(f"cache '{alias}' could not be searched")
    return found


def celery_results_verifier(tenant: Tenant, subject_key: str) -> list[str]:
    """The Celery result backend, when one is configured (the default keeps no results:
    ``CELERY_TASK_IGNORE_RESULT``; a database backend is covered by the table scan)."""
    from celery import current_app as app  # the project's app (platform_site.celery)

    backend_url = app.conf.result_backend
    if not backend_url or str(backend_url).startswith(("django-db", "db+", "disabled")):
        return []
    backend = app.backend
    client = getattr(backend, "client", None)
    if client is None or not hasattr(client, "scan_iter"):
        return [f"result backend {type(backend).__name__} cannot be searched"]
    prefix = getattr(backend, "task_keyprefix", b"celery-task-meta-")
    prefix = prefix.decode() if isinstance(prefix, bytes) else str(prefix)
    return ["celery result backend"] if _scan_redis(
        client, subject_key.encode(), f"{prefix}*") else []


# --- The service -------------------------------------------------------------------------------


def erasure_verifiers() -> dict[str, Verifier]:
    """Every check beside the table scan, by name: the declared stores' verifiers and the
    privacy app's own (its export files, caches, the Celery result backend)."""
    verifiers: dict[str, Verifier] = {
        "privacy.caches": caches_verifier,
        "privacy.celery_results": celery_results_verifier,
        "privacy.export_files": export_files_verifier,
    }
    for store in subject_data_stores():
        if callable(store.verify_erased):
            verifiers[store.name] = store.verify_erased
    return verifiers


def check_subject(*, tenant: Tenant, subject_key: str) -> ErasureCheck:
    """Search everywhere for ``subject_key`` (no write)."""
    started = time.perf_counter()
    check = ErasureCheck(checked_at=timezone.now().isoformat())
    columns, tables = scan_tables(subject_key)
    check.hits.extend(f"table {c}" for c in columns)
    check.places.append(f"database ({tables} tables)")
    for name, verifier in sorted(erasure_verifiers().items()):
        try:
            places = verifier(tenant, subject_key)
        except Exception:
            logger.exception("privacy.erasure_verifier_failed name=%s", name)
            places = [f"verifier {name} failed"]
        check.places.append(name)
        check.hits.extend(f"{name}: {place}" for place in places)
    check.seconds = time.perf_counter() - started
    return check


def verify_erasure(*, privacy_request: PrivacyRequest) -> ErasureCheck:
    """Check an erasure request's subject and record the result on the request (and in the
    audit trail). 0 hits is the only result that lets the request complete."""
    pr = privacy_request
    check = check_subject(tenant=pr.tenant, subject_key=pr.subject_key)
    with transaction.atomic():
        locked = (PrivacyRequest.objects.for_tenant(pr.tenant_id).select_for_update()
                  .get(pk=pr.pk))
        locked.erasure_check = check.as_dict()
        locked.save(update_fields=["erasure_check", "updated_at"])
        from apps.audit import services as audit

        audit.record(pr.tenant, "privacy.erasure_verified", None, locked,
                     {"reference": locked.reference[:8], "hits": len(check.hits),
                      "places": check.places})
    pr.erasure_check = check.as_dict()
    return check
