"""Privacy invariant 3: every model holding subject data has an export and an erase."""

from __future__ import annotations

from django.db import models
from django.test.utils import isolate_apps

from apps.privacy.registry import subject_bearing_models, uncovered_subject_models


def test_every_subject_bearing_model_is_covered_by_a_privacy_handler():
    assert subject_bearing_models(), "the walk found no subject models at all"
    assert uncovered_subject_models() == []


@isolate_apps("apps.privacy")
def test_a_new_subject_model_without_a_handler_is_reported():
    from django.apps import apps as isolated  # noqa: F401 - the isolated registry is current

    class Forgotten(models.Model):
        subject_key = models.CharField(max_length=64)

        class Meta:
            app_label = "privacy"

        def __str__(self) -> str:
            return "forgotten"

    assert "privacy.Forgotten" in uncovered_subject_models(Forgotten._meta.apps)
