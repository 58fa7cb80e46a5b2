"""Cross-tenant probes for the modeling routes (tests/core/test_tenant_isolation.py)."""

from __future__ import annotations

from apps.modeling.models import ModelVersion
from apps.modeling.services import train_model
from apps.tenants.models import Tenant
from tests.factories.modeling import configure, planted_dataset
from tests.isolation import IsolationCase, Probe, isolation_case

PREFIX = "ownersecret-"


def _trained_owner(owner: Tenant):
    configure(owner)
    planted = planted_dataset(owner, groups=2, items_per_group=6, subjects_per_group=5,
                              per_subject=4, prefix=PREFIX)
    train_model(tenant=owner)
    return planted


def _markers(planted) -> tuple[str, ...]:
    return (PREFIX, *[i for group in planted.groups for i in group])


def _intact(owner: Tenant):
    before = list(ModelVersion.objects.for_tenant(owner).values_list("pk", "status",
                                                                      "revision"))
    return lambda: list(ModelVersion.objects.for_tenant(owner).values_list(
        "pk", "status", "revision")) == before


@isolation_case("recommendations")
def recommendations(owner: Tenant) -> IsolationCase:
    planted = _trained_owner(owner)
    return IsolationCase(
        target=Probe(query={"subject": planted.subjects[0], "explain": "true"}),
        missing=Probe(query={"subject": "no-such-subject", "explain": "true"}),
        markers=_markers(planted), intact=_intact(owner))


@isolation_case("recommendations-session:post")
def session_recommendations(owner: Tenant) -> IsolationCase:
    planted = _trained_owner(owner)
    return IsolationCase(
        target=Probe(method="post", body={"recent_items": planted.groups[0][:3]}),
        missing=Probe(method="post", body={"recent_items": ["no-such-item"]}),
        markers=_markers(planted), intact=_intact(owner))


@isolation_case("item-similar")
def similar(owner: Tenant) -> IsolationCase:
    planted = _trained_owner(owner)
    return IsolationCase(
        target=Probe(kwargs={"item": planted.groups[1][0]}),
        missing=Probe(kwargs={"item": "no-such-item"}),
        markers=_markers(planted), intact=_intact(owner))


@isolation_case("model-bundle")
def bundle(owner: Tenant) -> IsolationCase:
    planted = _trained_owner(owner)
    return IsolationCase(target=Probe(), markers=_markers(planted), intact=_intact(owner))
