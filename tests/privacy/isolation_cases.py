from __future__ import annotations

from apps.privacy.models import PrivacyRequest
from tests.factories.privacy import make_request
from tests.isolation import IsolationCase, Probe, isolation_case


@isolation_case("privacy-request-detail")
def privacy_request_detail(owner) -> IsolationCase:
    pr = make_request(owner, kind="restriction", subject="owner-only-subject")
    missing_id = (PrivacyRequest.all_tenants.order_by("-pk").values_list("pk", flat=True).first()
                  or 0) + 1000
    status = pr.status
    return IsolationCase(
        target=Probe(kwargs={"request_id": pr.pk}),
        missing=Probe(kwargs={"request_id": missing_id}),
        markers=(pr.reference, pr.subject_key, "owner-only-subject"),
        intact=lambda: PrivacyRequest.objects.for_tenant(owner).get(pk=pr.pk).status == status,
    )


@isolation_case("privacy-request-list:post")
def privacy_request_create(owner) -> IsolationCase:
    """A's key files a request: it lands in A's tenant, never in B's."""
    before = PrivacyRequest.objects.for_tenant(owner).count()
    return IsolationCase(
        target=Probe(method="post", body={"kind": "opt_out", "subject": "someone"}),
        markers=(owner.slug,),
        intact=lambda: PrivacyRequest.objects.for_tenant(owner).count() == before,
    )
