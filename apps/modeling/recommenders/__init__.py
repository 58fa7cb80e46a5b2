"""Recommendation algorithms: one module per algorithm, discovered from this package.

Adding an algorithm is one new module here whose :class:`Recommender` subclass is decorated
with :func:`register`; the allowed algorithms (settings, the candidate grid, admin and API
choices) are the registered ones, in discovery order (module name).
"""

from __future__ import annotations

import importlib
import pkgutil

from apps.modeling.recommenders.base import (
    Recommender,
    Setting,
    register,
    registry,
    unregister,
)

_discovered = False


def _discover() -> None:
    global _discovered  # one import pass per process
    if _discovered:
        return
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module != "base":
            importlib.import_module(f"{__name__}.{module}")
    _discovered = True


def recommenders() -> list[type[Recommender]]:
    """Every registered algorithm: this package's in module-name order (whichever module
    a caller imported first), then any other in registration order."""
    _discover()
    registered = list(registry().values())
    own = f"{__name__}."
    return sorted(registered, key=lambda r: (0, r.__module__, 0) if r.__module__.startswith(own)
                  else (1, "", registered.index(r)))


def algorithm_names() -> tuple[str, ...]:
    return tuple(r.name for r in recommenders())


def get_recommender(name: str) -> type[Recommender]:
    """The algorithm ``name``; ``KeyError`` when none is registered under it."""
    _discover()
    return registry()[name]


def algorithm_choices() -> list[tuple[str, str]]:
    """``ModelVersion.algorithm`` choices (a callable: the registry decides)."""
    return [(r.name, r.label) for r in recommenders()]


__all__ = ["Recommender", "Setting", "algorithm_choices", "algorithm_names", "get_recommender",
           "recommenders", "register", "unregister"]
