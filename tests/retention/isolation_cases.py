"""Cross-tenant probes for the retention routes (see tests/isolation.py).

Categories are the same for every tenant, so tenant A asking for "events" reaches its own
policy: the answers are not compared with a "missing" one. What matters is that B's period
(an unusual number of hours used as a marker) never shows, and that A's PUT leaves B's
policy as it was."""

from __future__ import annotations

from apps.retention.models import RetentionPolicy
from apps.retention.services import set_retention_policy
from apps.tenants.models import Tenant
from tests.isolation import IsolationCase, Probe, isolation_case

OWNER_HOURS = 654_321  # shows up as "654321" only if B's policy leaks


def _owner_policy(owner: Tenant) -> RetentionPolicy:
    set_retention_policy(tenant=owner, category="events", hours=OWNER_HOURS)
    return RetentionPolicy.objects.for_tenant(owner).get(category="events")


def _intact(owner: Tenant) -> bool:
    policy = RetentionPolicy.objects.for_tenant(owner).get(category="events")
    return (policy.days, policy.hours) == (None, OWNER_HOURS)


@isolation_case("retention-policy-list")
def retention_policy_list(owner: Tenant) -> IsolationCase:
    _owner_policy(owner)
    return IsolationCase(target=Probe(), markers=(str(OWNER_HOURS),),
                         intact=lambda: _intact(owner))


@isolation_case("retention-policy-detail")
def retention_policy_detail(owner: Tenant) -> IsolationCase:
    _owner_policy(owner)
    return IsolationCase(target=Probe(kwargs={"category": "events"}),
                         markers=(str(OWNER_HOURS),), intact=lambda: _intact(owner))


@isolation_case("retention-policy-detail:put")
def retention_policy_put(owner: Tenant) -> IsolationCase:
    _owner_policy(owner)
    return IsolationCase(target=Probe(method="put", kwargs={"category": "events"},
                                      body={"days": 7}),
                         markers=(str(OWNER_HOURS),), intact=lambda: _intact(owner))
