"""django-auditlog's configuration changes, anchored in the tamper-evident chain (issue 14,
point 4).

django-auditlog writes a ``LogEntry`` for each change to a registered configuration model (API
keys, memberships, purposes and notices, the event schema and catalog, retention policies, the
tenant's own settings). Those rows sit in one plain table that an insider with database
access could edit or delete. So each ``LogEntry`` about a tenant's object is **anchored**: in
the same transaction an entry ``config.changed`` is appended to that tenant's audit chain,
naming the ``LogEntry`` and carrying a keyed hash of its whole content (the tenant's chain key,
:mod:`apps.audit.sealing`). The chain's keyed hashes and signed exported heads protect the
anchor; ``verify_chain`` checks that each anchored ``LogEntry`` still exists with the content
it had, and names the anchor and the ``LogEntry`` when it does not.

Why anchors in the existing chain rather than a second chain over ``LogEntry`` rows: the
chain already has the keys, the head export, the verification job and the command; a second
chain would need all of them again, and its heads exported and checked beside the first.

Which tenant: the object's ``tenant_id`` (a ``Tenant`` is its own). django-auditlog sends
``pre_log`` with the instance just before it writes a ``LogEntry`` for a create, update or
delete; that instance is remembered for the ``LogEntry``'s ``post_save`` (after a delete the
row is gone, so it is the only way to its tenant). A many-to-many change sends no ``pre_log``;
its object still exists and is read back. ``LogEntry`` rows about models that belong to no
tenant are not anchored.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from auditlog import get_logentry_model
from django.db import models

from apps.audit.models import AuditEvent
from apps.audit.sealing import canonical, chain_keys, keyed_digest
from apps.tenants.models import Tenant
from apps.tenants.scoping import TenantOwnedModel

CONFIG_CHANGED = "config.changed"
LOG_ENTRY_TARGET = "auditlog.logentry"

# Every column of a LogEntry (the content type by its natural key, so a restore that
# renumbers content types does not read as tampering).
CONTENT_FIELDS = (
    "id", "content_type__app_label", "content_type__model", "object_pk", "object_id",
    "object_repr", "serialized_data", "action", "changes_text", "changes", "actor_id",
    "actor_email", "cid", "remote_addr", "remote_port", "timestamp", "additional_data",
)

ACTION_NAMES = {0: "create", 1: "update", 2: "delete", 3: "access"}

# The instance django-auditlog is logging right now (set by ``pre_log``).
_being_logged: ContextVar[models.Model | None] = ContextVar("audit_being_logged", default=None)


def remember_logged_instance(sender: Any, instance: models.Model, **kwargs: Any) -> None:
    """``pre_log`` receiver. Returns ``None``: a ``False`` would cancel the log entry."""
    _being_logged.set(instance)


def forget_logged_instance(sender: Any, **kwargs: Any) -> None:
    """``post_log`` receiver."""
    _being_logged.set(None)


def tenant_id_of(log_entry: Any) -> int | None:
    """The tenant whose object ``log_entry`` is about; ``None`` for a model that belongs to no
    tenant (or an object that cannot be found, which the caller reports)."""
    model = log_entry.content_type.model_class()
    if model is None:
        return None
    if issubclass(model, Tenant):
        return int(log_entry.object_pk)
    if not issubclass(model, TenantOwnedModel):
        return None
    instance = _being_logged.get()
    if (isinstance(instance, model) and instance.pk is not None
            and str(instance.pk) == str(log_entry.object_pk)):
        return instance.tenant_id
    # A change the object survived (many-to-many): read its tenant. _base_manager: the row
    # is named by its primary key, and its tenant is what is being found out.
    return (model._base_manager.filter(pk=log_entry.object_pk)
            .values_list("tenant_id", flat=True).first())


def read_contents(log_entry_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The stored content of each LogEntry that still exists, by id."""
    LogEntry = get_logentry_model()  # noqa: N806 - a model class
    return {row["id"]: row for row in
            LogEntry.objects.filter(pk__in=list(log_entry_ids)).values(*CONTENT_FIELDS)}


def _message(tenant_id: int, content: dict[str, Any]) -> bytes:
    return canonical({"tenant": tenant_id, "log_entry": content})


def content_hash(tenant_id: int, content: dict[str, Any]) -> str:
    """Keyed hash (the tenant's current chain key) of a LogEntry's stored content. Keyed, and
    bound to the tenant, so that it reveals nothing of a LogEntry that was later removed and
    cannot vouch for another tenant's row."""
    return keyed_digest(chain_keys(tenant_id)[0], _message(tenant_id, content))


def content_matches(tenant_id: int, content: dict[str, Any], digest: str) -> bool:
    message = _message(tenant_id, content)
    return any(hmac.compare_digest(keyed_digest(key, message), digest)
               for key in chain_keys(tenant_id))


def anchor_details(log_entry: Any, content: dict[str, Any], tenant_id: int) -> dict[str, Any]:
    """What the chain entry says of the LogEntry: no object representation, no values."""
    return {
        "log_entry": log_entry.pk,
        "change": ACTION_NAMES.get(log_entry.action, str(log_entry.action)),
        "model": f"{content['content_type__app_label']}.{content['content_type__model']}",
        "object_pk": str(log_entry.object_pk),
        "content_hash": content_hash(tenant_id, content),
    }


def describe_anchor(sequence: int, details: dict[str, Any]) -> str:
    return (f"entry #{sequence} anchors django-auditlog entry {details.get('log_entry')} "
            f"({details.get('change')} of {details.get('model')} {details.get('object_pk')})")


class AnchorChecks:
    """Anchors met while walking a chain, checked in batches against their LogEntry rows."""

    batch_size = 1000

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self.pending: list[tuple[int, dict[str, Any]]] = []

    def add(self, entry: AuditEvent) -> tuple[int, str] | None:
        """Queue an anchor; when a batch is full, check it. Returns ``(sequence, problem)``
        for the first broken anchor, else ``None``."""
        self.pending.append((entry.sequence, entry.details))
        return self.flush() if len(self.pending) >= self.batch_size else None

    def flush(self) -> tuple[int, str] | None:
        pending, self.pending = self.pending, []
        ids = [d.get("log_entry") for _, d in pending if isinstance(d.get("log_entry"), int)]
        contents = read_contents(ids)
        for sequence, details in pending:
            content = contents.get(details.get("log_entry"))  # type: ignore[arg-type]
            if content is None:
                return sequence, f"{describe_anchor(sequence, details)}, which was deleted"
            digest = details.get("content_hash")
            if not isinstance(digest, str) or not content_matches(self.tenant_id, content,
                                                                  digest):
                return sequence, (f"{describe_anchor(sequence, details)}, which was altered "
                                  "since (its content hash differs)")
        return None


@dataclass(frozen=True)
class AnchorStatus:
    tenant_id: int
    sequence: int
    intact: bool  # the LogEntry still has the content its anchor hashed


def anchor_statuses(log_entry_ids: Collection[int], *,
                    tenant_ids: Collection[int] | None) -> dict[int, AnchorStatus]:
    """For the admin: each LogEntry's anchor among ``tenant_ids``'s chains (every tenant's
    for ``None``, a superuser) and whether its content still matches. A LogEntry missing from
    the result is not anchored in those chains."""
    if tenant_ids is None:
        anchors = AuditEvent.all_tenants.all()  # a superuser's view crosses tenants
    else:
        anchors = AuditEvent.objects.filter(tenant_id__in=sorted(tenant_ids))
    rows = (anchors.filter(action=CONFIG_CHANGED, target_type=LOG_ENTRY_TARGET,
                           target_id__in=[str(pk) for pk in log_entry_ids])
            .order_by("-sequence").values_list("tenant_id", "sequence", "target_id", "details"))
    contents = read_contents(log_entry_ids)
    statuses = {}
    for tenant_id, sequence, target_id, details in rows:  # the lowest sequence wins
        log_entry_id = int(target_id)
        content = contents.get(log_entry_id)
        digest = details.get("content_hash")
        statuses[log_entry_id] = AnchorStatus(
            tenant_id, sequence,
            content is not None and details.get("log_entry") == log_entry_id
            and isinstance(digest, str) and content_matches(tenant_id, content, digest))
    return statuses
