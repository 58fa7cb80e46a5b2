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


def _held_request(owner) -> PrivacyRequest:
    owner.settings = {**owner.settings, "privacy_approval_kinds": ["restriction"]}
    owner.save()
    return make_request(owner, kind="restriction", subject="owner-held-subject")


@isolation_case("privacy-request-approve:post")
def privacy_request_approve(owner) -> IsolationCase:
    """A's key cannot approve B's request held for approval (404 as for a missing one)."""
    pr = _held_request(owner)
    missing_id = pr.pk + 1000
    return IsolationCase(
        target=Probe(method="post", kwargs={"request_id": pr.pk}),
        missing=Probe(method="post", kwargs={"request_id": missing_id}),
        markers=(pr.reference, pr.subject_key, "owner-held-subject"),
        intact=lambda: PrivacyRequest.objects.for_tenant(owner).get(
            pk=pr.pk).status == "awaiting_approval",
    )


@isolation_case("privacy-request-deny:post")
def privacy_request_deny(owner) -> IsolationCase:
    """A's key cannot deny B's request held for approval (404 as for a missing one)."""
    pr = _held_request(owner)
    missing_id = pr.pk + 1000
    return IsolationCase(
        target=Probe(method="post", kwargs={"request_id": pr.pk}, body={"reason": "no"}),
        missing=Probe(method="post", kwargs={"request_id": missing_id},
                      body={"reason": "no"}),
        markers=(pr.reference, pr.subject_key, "owner-held-subject"),
        intact=lambda: PrivacyRequest.objects.for_tenant(owner).get(
            pk=pr.pk).status == "awaiting_approval",
    )
