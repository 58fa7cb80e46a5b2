"""The registry of retention categories (like the privacy handlers, DESIGN "Subject handlers").

A category names a kind of data, its default period, the models it governs and how to find
and delete what has expired. Apps register theirs from ``AppConfig.ready`` with
:func:`register_retention_category`, or add their models to an existing category with
:func:`cover_models` (a model deleted with an inactive subject, for example). A test walks
every subject-bearing model and fails when one is governed by no category, so a new kind of
subject data cannot be added without a retention period (GDPR Art. 5(1)(e)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps
from django.apps.registry import Apps

from apps.tenants.models import Tenant


@dataclass
class PurgeResult:
    """What one batch did. ``state`` is the category's own cursor, stored in the run's
    checkpoint in the batch's transaction; ``done`` ends the category for this run."""

    deleted: int
    done: bool
    state: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None  # rows behind ``deleted`` when the unit is not rows (subjects)


#: ``count(tenant, cutoff) -> int``: what a run with this cutoff would delete now.
Counter = Callable[[Tenant, datetime], int]
#: ``purge(tenant, cutoff, batch_size, state) -> PurgeResult``: delete one batch (at most
#: ``batch_size`` rows per statement) in the caller's transaction.
Purger = Callable[[Tenant, datetime, int, dict[str, Any]], PurgeResult]
#: ``after_purge(tenant, cutoff, deleted)``: called after commit when a category of a run has
#: finished with ``deleted > 0`` (e.g. tell the models that data is gone).
AfterPurge = Callable[[Tenant, datetime, int], None]


@dataclass(frozen=True)
class RetentionCategory:
    code: str                      # API and command name, e.g. "events"
    label: str                     # for people
    description: str               # what goes, measured from when, and why this default
    default_days: int | None       # None: the period is not set on this category (follows)
    models: tuple[str, ...]        # model labels governed by this category
    count: Counter
    purge: Purger
    order: int = 100               # enforcement order within a run: lower first
    unit: str = "rows"             # what ``N`` in ``category: N`` counts
    follows: str | None = None     # the category whose period this one uses
    after_purge: AfterPurge | None = None
    #: False for a rule that is not a period (model artifacts: keep the newest versions);
    #: its ``cutoff`` is then the run's time.
    time_based: bool = True
    #: False when another app fixes the period (it cannot be set through retention yet).
    settable: bool = True


_categories: dict[str, RetentionCategory] = {}
_extra_models: dict[str, set[str]] = {}


def register_retention_category(category: RetentionCategory) -> None:
    existing = _categories.get(category.code)
    if existing is not None and existing != category:
        raise ValueError(f"retention category '{category.code}' registered twice")
    _categories[category.code] = category


def cover_models(category_code: str, *model_labels: str) -> None:
    """Declare that ``model_labels`` are governed by an existing category (registered or
    not yet: the check runs when categories are read)."""
    _extra_models.setdefault(category_code, set()).update(model_labels)


def retention_categories() -> list[RetentionCategory]:
    """Every category, in enforcement order."""
    return sorted(_categories.values(), key=lambda c: (c.order, c.code))


def get_retention_category(code: str) -> RetentionCategory | None:
    return _categories.get(code)


def category_models(code: str) -> tuple[str, ...]:
    category = _categories.get(code)
    own = category.models if category else ()
    return tuple(dict.fromkeys([*own, *sorted(_extra_models.get(code, ()))]))


def uncovered_subject_models(registry: Apps = apps) -> list[str]:
    """Subject-bearing models (``apps.privacy.registry.subject_bearing_models``) that no
    retention category governs."""
    from apps.privacy.registry import subject_bearing_models

    covered = {label for code in _categories for label in category_models(code)}
    return sorted(
        m._meta.label for m in subject_bearing_models(registry) if m._meta.label not in covered
    )
