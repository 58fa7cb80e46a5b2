"""What subjects are told about retention (exports, the portal's "my data"): the privacy
registry's retention rule of each handler, computed from the tenant's actual policies.
Registered with ``replace=True`` so they take precedence over the privacy app's defaults."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.privacy.registry import RetentionRule
    from apps.tenants.models import Tenant


def _period(tenant: Tenant, category: str) -> timedelta | None:
    from apps.retention.selectors import get_retention_period

    return get_retention_period(tenant=tenant, category=category)


def describe_period(period: timedelta | None) -> str:
    if period is None:
        return "no fixed period"
    hours = int(period.total_seconds() // 3600)
    if hours % 24:
        return f"{hours} hours"
    return "1 day" if hours == 24 else f"{hours // 24} days"


def _days(period: timedelta | None) -> int | None:
    return period.days if period is not None and not period.seconds else None


def _rule(text: str, period: timedelta | None = None, *, days: bool = True) -> RetentionRule:
    from apps.privacy.registry import RetentionRule

    return RetentionRule(text, _days(period) if days else None)


def events_rule(tenant: Tenant) -> RetentionRule:
    from apps.events.selectors import history_cap

    period = _period(tenant, "events")
    return _rule(f"Interactions are kept at most {describe_period(period)}, and only your "
                 f"newest {history_cap(tenant)}; older ones are deleted automatically, and "
                 f"the recommendation models are retrained without them within a day.", period)


def _inactivity(tenant: Tenant) -> str:
    return describe_period(_period(tenant, "inactive_subjects"))


def ledger_rule(tenant: Tenant) -> RetentionRule:
    return _rule(
        "Your history of choices is kept as proof of what you agreed to (GDPR Art. 7(1)) "
        f"for {describe_period(_period(tenant, 'consent_ledger'))} after your last change, "
        "then deleted.", days=False)


def state_rule(what: str) -> Callable[[Tenant], RetentionRule]:
    def rule(tenant: Tenant) -> RetentionRule:
        return _rule(f"{what} kept while you use the service, and deleted after "
                     f"{_inactivity(tenant)} without any activity.", days=False)

    return rule


def audit_token_rule(tenant: Tenant) -> RetentionRule:
    return _rule("The link between you and the audit trail is deleted when your data is "
                 f"erased or after {_inactivity(tenant)} without any activity; the audit "
                 "entries it linked stay, anonymous, for "
                 f"{describe_period(_period(tenant, 'audit_entries'))}.", days=False)


def exports_rule(tenant: Tenant) -> RetentionRule:
    period = _period(tenant, "exports")
    return _rule(f"Prepared copies are deleted {describe_period(period)} after they are "
                 "made.", period)


def requests_rule(tenant: Tenant) -> RetentionRule:
    period = _period(tenant, "closed_privacy_requests")
    return _rule(f"Records of your privacy requests are kept for {describe_period(period)} "
                 "after they close (CCPA regulations §7101), then deleted.", period)


def tombstone_rule(tenant: Tenant) -> RetentionRule:
    period = _period(tenant, "erasure_tombstones")
    return _rule("Kept so that an erasure is repeated if a backup is ever restored, for "
                 f"{describe_period(period)} after the erasure; it holds only a pseudonym.",
                 period)


def models_rule(tenant: Tenant) -> RetentionRule:
    return _rule("Recommendation models are retrained without the data deleted under these "
                 "rules; only the active model and the two before it are kept.", days=False)


def register_rules() -> None:
    from apps.privacy.registry import register_retention_rule

    rules = {
        "events.event": events_rule,
        "consent.ledger": ledger_rule,
        "consent.state": state_rule("Your current choices are"),
        "consent.subject_state": state_rule("Your personalization level and flags are"),
        "audit.subject_token": audit_token_rule,
        "privacy.exports": exports_rule,
        "privacy.request": requests_rule,
        "privacy.tombstone": tombstone_rule,
        "modeling.artifacts": models_rule,
    }
    for handler_name, rule in rules.items():
        register_retention_rule(handler_name, rule)
