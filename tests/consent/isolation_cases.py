"""Cross-tenant probes for the consent routes (see tests/isolation.py).

Subject ids are pseudonymized under each tenant's own secret, so tenant A asking about
tenant B's subject id reaches a different (never-seen) subject of A's: the answer must be the
same as for an id nobody used, and B's choices must stay as they were."""

from __future__ import annotations

from apps.consent.models import ConsentRecord
from apps.consent.services import record_consents
from apps.tenants.models import Tenant
from apps.tenants.services import pseudonymize
from tests.factories.consent import PrivacyNoticeFactory
from tests.isolation import IsolationCase, Probe, isolation_case

OWNER_SUBJECT = "owner-subject-4411"


def _owner_consent(owner: Tenant) -> tuple[str, int]:
    PrivacyNoticeFactory(tenant=owner, version="owner-notice-v7")
    key = pseudonymize(owner, OWNER_SUBJECT)
    record_consents(tenant=owner, subject_key=key, decisions={"personalization": True},
                    notice_version="owner-notice-v7", level="full", method="owner-banner")
    return key, ConsentRecord.objects.for_tenant(owner).filter(subject_key=key).count()


def _intact(owner: Tenant, key: str, rows: int) -> bool:
    from apps.consent.selectors import can_use

    return (ConsentRecord.objects.for_tenant(owner).filter(subject_key=key).count() == rows
            and can_use(tenant=owner, subject_key=key, purpose="personalization"))


@isolation_case("subject-consent")
def subject_consent(owner: Tenant) -> IsolationCase:
    key, rows = _owner_consent(owner)
    return IsolationCase(
        target=Probe(kwargs={"subject": OWNER_SUBJECT}),
        missing=Probe(kwargs={"subject": "nobody-ever-used-this-id"}),
        markers=("owner-notice-v7", "owner-banner", key),
        intact=lambda: _intact(owner, key, rows),
    )


@isolation_case("subject-consent:put")
def subject_consent_put(owner: Tenant) -> IsolationCase:
    key, rows = _owner_consent(owner)
    body = {"purposes": {"personalization": False}, "level": "off"}
    return IsolationCase(
        # Both answers are 200 with the caller's own fresh timestamps, so they are not
        # compared; what matters is that B's notice never shows and B's subject is untouched.
        target=Probe(method="put", kwargs={"subject": OWNER_SUBJECT}, body=body),
        markers=("owner-notice-v7", "owner-banner", key),
        intact=lambda: _intact(owner, key, rows),
    )


@isolation_case("subject-restriction:delete")
def subject_restriction_delete(owner: Tenant) -> IsolationCase:
    from apps.consent.models import SubjectState
    from apps.consent.services import set_restriction

    key, _ = _owner_consent(owner)
    set_restriction(tenant=owner, subject_key=key, restricted=True)
    return IsolationCase(
        # A's key reaches a never-seen subject of A's: the same answer as for an id nobody
        # used, and B's subject stays restricted.
        target=Probe(method="delete", kwargs={"subject": OWNER_SUBJECT}),
        missing=Probe(method="delete", kwargs={"subject": "nobody-ever-used-this-id"}),
        markers=("owner-notice-v7", "owner-banner", key),
        intact=lambda: SubjectState.objects.for_tenant(owner).get(subject_key=key).restricted,
    )
