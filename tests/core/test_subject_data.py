"""The subject-data declarations (DESIGN "Declarations"): every store defines every right,
and a declaration that leaves one out is refused."""

from __future__ import annotations

import dataclasses

import pytest
from django.db.models import QuerySet
from django.utils import timezone

from apps.core.subject_data import (
    COVERED_BY_TABLE_SCAN,
    RIGHTS,
    Expiry,
    Frozen,
    KeptAsProof,
    ModelEffect,
    NotApplicable,
    RetentionRule,
    SubjectDataStore,
    declare,
    not_applicable,
    retention_notice,
    subject_data_stores,
    undefined_rights,
)
from tests.subject_data import declared, throwaway_store

#: A throw-away store, declared for this module: the every-right test picks it up too.
THROWAWAY = throwaway_store("test.throwaway")


def _stores() -> list[SubjectDataStore]:
    with declared(THROWAWAY):
        return subject_data_stores()


STORES = _stores()


def test_every_app_declares_its_stores():
    names = {s.name for s in STORES}
    assert {"events.event", "consent.ledger", "consent.state", "consent.subject_state",
            "audit.subject_token", "modeling.artifacts", "modeling.quarantine",
            "privacy.exports",
            "privacy.portal_session", "privacy.request", "privacy.tombstone",
            "test.throwaway"} <= names


@pytest.mark.parametrize("right", sorted(RIGHTS))
@pytest.mark.parametrize("store", STORES, ids=lambda s: s.name)
def test_every_store_defines_every_right(store, right):
    value = getattr(store, right)
    if isinstance(value, NotApplicable | KeptAsProof | Frozen):
        reason = getattr(value, "reason", None) or getattr(value, "law", None) or value.how
        assert reason.strip(), f"{store.name}.{right}: say why"
    elif right in {"export", "erase", "rectify"}:
        assert callable(value), f"{store.name}.{right} is undefined"
    elif right == "retention":
        assert isinstance(value, RetentionRule)
        assert isinstance(value.expiry, Expiry | NotApplicable)
    else:
        assert isinstance(value, ModelEffect)
    assert undefined_rights(store) == []


@pytest.mark.django_db
@pytest.mark.parametrize("store", STORES, ids=lambda s: s.name)
def test_every_retention_rule_reads_in_plain_words_and_finds_its_expired_rows(store, tenant):
    notice = retention_notice(store, tenant)
    assert notice.text.endswith(".")
    assert notice.days is None or notice.days > 0
    expiry = store.retention.expiry
    if isinstance(expiry, Expiry):
        assert isinstance(expiry.expired(tenant, timezone.now()), QuerySet)
        assert expiry.default_days > 0


@pytest.mark.parametrize("right", sorted(RIGHTS))
def test_a_declaration_that_leaves_a_right_out_is_refused(right):
    fields = {f.name: getattr(THROWAWAY, f.name) for f in dataclasses.fields(THROWAWAY)}
    del fields[right]
    with pytest.raises(TypeError):
        SubjectDataStore(**fields)
    with pytest.raises(TypeError, match=right):
        dataclasses.replace(THROWAWAY, **{right: None})


def test_a_store_outside_the_tables_says_how_its_erasure_is_checked():
    with pytest.raises(TypeError, match="verify_erased"):
        dataclasses.replace(THROWAWAY, verify_erased=COVERED_BY_TABLE_SCAN)
    assert dataclasses.replace(THROWAWAY, verify_erased=not_applicable("checked elsewhere"))
    assert dataclasses.replace(THROWAWAY, models=("events.Event",),
                               verify_erased=COVERED_BY_TABLE_SCAN)


def test_the_same_name_cannot_be_declared_for_two_stores():
    with declared(THROWAWAY), pytest.raises(ValueError, match="declared twice"):
        declare(dataclasses.replace(THROWAWAY, order=1))
