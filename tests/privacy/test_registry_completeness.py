"""Privacy invariant 3: every model holding subject data is declared by a store, with an
export and an erase (or a reason it is kept as proof)."""

from __future__ import annotations

from django.db import models
from django.test.utils import isolate_apps

from apps.core.subject_data import (
    kept_as_proof,
    subject_bearing_models,
    subject_data_stores,
    undeclared_subject_models,
)
from tests.subject_data import declared, throwaway_store


def test_every_subject_bearing_model_is_declared_by_a_store():
    assert subject_bearing_models(), "the walk found no subject models at all"
    assert undeclared_subject_models() == []


def test_only_the_legal_proof_outlives_an_erasure():
    kept = {s.name: s.erase for s in subject_data_stores() if s.kept_as_proof}
    assert set(kept) == {"privacy.request", "privacy.tombstone"}
    assert all(erase(None, "sk") == 0 for erase in kept.values())


@isolate_apps("apps.privacy")
def test_a_new_subject_model_without_a_declaration_is_reported():
    from django.apps import apps as isolated  # noqa: F401 - the isolated registry is current

    class Forgotten(models.Model):
        subject_key = models.CharField(max_length=64)

        class Meta:
            app_label = "privacy"

        def __str__(self) -> str:
            return "forgotten"

    class Renamed(models.Model):
        person = models.CharField(max_length=64)

        class Meta:
            app_label = "privacy"

        def __str__(self) -> str:
            return "renamed"

    registry = Forgotten._meta.apps
    assert "privacy.Forgotten" in undeclared_subject_models(registry)
    assert "privacy.Renamed" not in undeclared_subject_models(registry)  # no subject field
    with declared(throwaway_store("privacy.forgotten", models=("privacy.Forgotten",),
                                  erase=kept_as_proof("test"))):
        assert "privacy.Forgotten" not in undeclared_subject_models(registry)
    with declared(throwaway_store("privacy.renamed", models=("privacy.Renamed",),
                                  subject_field="person")):
        assert Renamed in subject_bearing_models(registry)
        assert "privacy.Renamed" not in undeclared_subject_models(registry)
