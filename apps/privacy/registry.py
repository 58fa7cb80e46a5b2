"""The registry every subject-bearing app plugs into (DESIGN "Subject handlers").

Each model that holds subject data registers an ``export`` and an ``erase`` for one subject
of one tenant. Access, portability and erasure requests run every handler; a test walks all
models with a subject field and fails when one is not covered (privacy invariant 3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.apps.registry import Apps
from django.db import models

from apps.tenants.models import Tenant

SUBJECT_FIELD = "subject_key"

Exporter = Callable[[Tenant, str], Any]
Eraser = Callable[[Tenant, str], int]


@dataclass(frozen=True)
class SubjectDataHandler:
    name: str                 # unique, e.g. "events.event"; used as a checkpoint name
    category: str             # what the subject sees in exports and receipts
    export: Exporter
    erase: Eraser
    models: tuple[str, ...]   # model labels this handler covers ("events.Event")
    order: int = 100          # erasure order: lower first (models before the ledger proof)


_handlers: dict[str, SubjectDataHandler] = {}
_custom_subject_fields: dict[str, str] = {}

#: ``verifier(tenant, subject_key) -> list of places still holding the subject`` for stores
#: outside the database (model artifacts, caches, export files). The erasure verifier runs
#: every one besides its own scan of every table.
ErasureVerifier = Callable[[Tenant, str], list[str]]
_erasure_verifiers: dict[str, ErasureVerifier] = {}


def register_subject_handler(handler: SubjectDataHandler) -> None:
    existing = _handlers.get(handler.name)
    if existing is not None and existing != handler:
        raise ValueError(f"subject handler '{handler.name}' registered twice")
    _handlers[handler.name] = handler


def register_erasure_verifier(name: str, verifier: ErasureVerifier) -> None:
    _erasure_verifiers[name] = verifier


def erasure_verifiers() -> dict[str, ErasureVerifier]:
    return dict(_erasure_verifiers)


def register_subject_field(model_label: str, field_name: str) -> None:
    """Declare that ``model_label`` holds subject data in a field not named subject_key."""
    _custom_subject_fields[model_label] = field_name


def subject_handlers() -> list[SubjectDataHandler]:
    return sorted(_handlers.values(), key=lambda h: (h.order, h.name))


def subject_bearing_models(registry: Apps = apps) -> list[type[models.Model]]:
    found = []
    for model in registry.get_models():
        field = _custom_subject_fields.get(model._meta.label, SUBJECT_FIELD)
        if any(f.name == field for f in model._meta.get_fields()):
            found.append(model)
    return found


def uncovered_subject_models(registry: Apps = apps) -> list[str]:
    covered = {label for h in _handlers.values() for label in h.models}
    return sorted(
        m._meta.label for m in subject_bearing_models(registry) if m._meta.label not in covered
    )


def model_handler(
    model: type[models.Model],
    *,
    category: str,
    export_fields: Iterable[str],
    subject_field: str = SUBJECT_FIELD,
    order: int = 100,
    name: str | None = None,
) -> SubjectDataHandler:
    """A handler for the common case: rows of ``model`` found by (tenant, subject field)."""
    fields = list(export_fields)

    def rows(tenant: Tenant, subject_key: str) -> models.QuerySet:
        return model.objects.for_tenant(tenant).filter(**{subject_field: subject_key})

    def export(tenant: Tenant, subject_key: str) -> list[dict[str, Any]]:
        return list(rows(tenant, subject_key).order_by("pk").values(*fields))

    def erase(tenant: Tenant, subject_key: str) -> int:
        deleted, _ = rows(tenant, subject_key).delete()
        return deleted

    return SubjectDataHandler(
        name=name or model._meta.label_lower, category=category, export=export, erase=erase,
        models=(model._meta.label,), order=order,
    )


# --- Additions for the privacy app's requests (issue 6) -------------------------------------

#: ``describe(tenant, subject_key) -> mapping`` called once *before* an erasure runs, its result
#: merged into the erasure receipt. The modeling app uses it to name the model versions the
#: subject was part of (``{"model_versions": ["v3", "v4"]}``).
ErasureDescriber = Callable[[Tenant, str], dict[str, Any]]
_erasure_describers: dict[str, ErasureDescriber] = {}


def register_erasure_describer(name: str, describer: ErasureDescriber) -> None:
    _erasure_describers[name] = describer


def erasure_describers() -> dict[str, ErasureDescriber]:
    return dict(_erasure_describers)


@dataclass(frozen=True)
class RetentionRule:
    """How long one handler's data is kept: ``days`` after the row was created (``None``: no
    fixed period) and the rule in plain words, for exports and the portal's "my data"."""

    text: str
    days: int | None = None


#: ``rule(tenant) -> RetentionRule`` per handler name. The last registration wins, so the
#: retention app can replace the defaults the privacy app registers.
RetentionDescriber = Callable[[Tenant], RetentionRule]
_retention_rules: dict[str, RetentionDescriber] = {}


def register_retention_rule(handler_name: str, rule: RetentionDescriber, *,
                            replace: bool = True) -> None:
    """``replace=False`` registers a default that an existing rule keeps precedence over."""
    if replace or handler_name not in _retention_rules:
        _retention_rules[handler_name] = rule


def retention_rule(tenant: Tenant, handler_name: str) -> RetentionRule | None:
    rule = _retention_rules.get(handler_name)
    return rule(tenant) if rule is not None else None


def subject_field_of(model: type[models.Model]) -> str:
    """The field holding the subject key in ``model`` (``subject_key`` unless declared)."""
    return _custom_subject_fields.get(model._meta.label, SUBJECT_FIELD)
