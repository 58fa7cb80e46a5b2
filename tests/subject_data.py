"""Throw-away subject-data declarations for tests: a store outside the tables, declared for
the length of a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from apps.core import subject_data
from apps.core.subject_data import (
    ModelEffect,
    RetentionRule,
    SubjectDataStore,
    not_applicable,
)


def throwaway_store(name: str, **overrides: Any) -> SubjectDataStore:
    """A store outside the tables (every right defined, doing nothing) for ``name``."""
    fields: dict[str, Any] = {
        "name": name, "category": f"test data ({name})", "models": (), "order": 150,
        "export": lambda tenant, subject_key: [],
        "erase": lambda tenant, subject_key: 0,
        "restrict": not_applicable("test store"),
        "rectify": not_applicable("test store"),
        "retention": RetentionRule(
            category="inactive_subjects", text=lambda tenant, period: "Test rule.",
            expiry=not_applicable("test store"), dated=False),
        "model_effect": ModelEffect.NONE,
        "verify_erased": lambda tenant, subject_key: [],
    }
    return SubjectDataStore(**{**fields, **overrides})


@contextlib.contextmanager
def declared(*stores: SubjectDataStore) -> Iterator[None]:
    """Declare ``stores`` for the block; withdraw them afterwards."""
    subject_data.declare(*stores)
    try:
        yield
    finally:
        for store in stores:
            subject_data.withdraw(store.name)


@contextlib.contextmanager
def replaced(name: str, **changes: Any) -> Iterator[SubjectDataStore]:
    """Swap a declared store for a copy with ``changes`` for the block."""
    import dataclasses

    original = subject_data.get_subject_data_store(name)
    assert original is not None, name
    subject_data.withdraw(name)
    changed = dataclasses.replace(original, **changes)
    subject_data.declare(changed)
    try:
        yield changed
    finally:
        subject_data.withdraw(name)
        subject_data.declare(original)
