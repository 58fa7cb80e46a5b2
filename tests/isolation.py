"""Cross-tenant probes for every API route (STYLE S7).

Each app's ``tests/<app>/isolation_cases.py`` registers, per URL name (``name`` for GET,
``name:method`` for other methods), a function that is
given the *owner* tenant (B), creates something of B's, and returns an :class:`IsolationCase`.
The generic test (tests/core/test_tenant_isolation.py) then asks with tenant A's key and
checks that A learns nothing: the answer for B's object equals the answer for an object that
does not exist, none of B's marker strings appear, and B's object is unchanged. A route under
``/api/v1/`` without a registered case fails the test, so new routes are covered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.tenants.models import Tenant


@dataclass
class Probe:
    method: str = "get"
    kwargs: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class IsolationCase:
    target: Probe                         # aimed at the owner's object
    missing: Probe | None = None          # same request at an object that does not exist
    markers: tuple[str, ...] = ()         # strings of the owner's that must never show
    intact: Callable[[], bool] | None = None  # the owner's object is still as it was
    scrub: tuple[str, ...] = ()           # identifiers that differ between target and missing


CaseFactory = Callable[[Tenant], IsolationCase]
CASES: dict[str, CaseFactory] = {}


def isolation_case(*url_names: str) -> Callable[[CaseFactory], CaseFactory]:
    def register(factory: CaseFactory) -> CaseFactory:
        for name in url_names:
            CASES[name] = factory
        return factory

    return register
