"""Training serves its large arrays from the heap (apps/modeling/memory.py, issue 15)."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from apps.modeling.memory import reuse_freed_memory


def test_training_processes_reuse_freed_memory_on_glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert reuse_freed_memory() is True
    assert reuse_freed_memory() is True  # once per process, then a no-op
    for _ in range(3):  # arrays far above the mmap threshold, freed and made again
        values = np.arange(10_000_000, dtype=np.int64)
        assert int(values.sum()) == 10_000_000 * 9_999_999 // 2
        del values


@pytest.mark.django_db
def test_a_training_applies_it(tenant, monkeypatch):
    from apps.core.exceptions import ApplicationError
    from apps.modeling import memory
    from apps.modeling.services.training import train_model

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    monkeypatch.setattr(memory, "_applied", False)
    with pytest.raises(ApplicationError):  # no events: not enough data, after the call
        train_model(tenant=tenant)
    assert memory._applied is True
