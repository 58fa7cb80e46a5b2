"""Cross-tenant probe for the records of processing (see tests/isolation.py).

The route has no object id: tenant A's key always reaches A's own records. What matters is
that none of B's sub-processors, purposes or name shows in A's records."""

from __future__ import annotations

from apps.consent.services import create_purpose
from apps.tenants.models import Tenant
from apps.transparency.models import SubProcessor
from tests.isolation import IsolationCase, Probe, isolation_case

MARKERS = ("Owner-Only Mailer GmbH", "owner_marker_purpose", "Reykjavik owner DC")


def _owner_records(owner: Tenant) -> None:
    SubProcessor.objects.create(tenant=owner, name=MARKERS[0], purpose="newsletters",
                                location=MARKERS[2], transfer_mechanism="scc",
                                safeguards="SCCs 2021/914")
    create_purpose(tenant=owner, key=MARKERS[1], name="Owner purpose",
                   description="Only the owner has this purpose.")


def _intact(owner: Tenant) -> bool:
    return SubProcessor.objects.for_tenant(owner).filter(name=MARKERS[0]).count() == 1


@isolation_case("records-of-processing")
def records_of_processing(owner: Tenant) -> IsolationCase:
    _owner_records(owner)
    return IsolationCase(target=Probe(), markers=(*MARKERS, owner.slug, owner.name),
                         intact=lambda: _intact(owner))

