"""Tenants, memberships, API keys and pseudonymization."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.core.db import PrecompiledLookup
from apps.core.exceptions import ApplicationError
from apps.core.tenant_settings import (
    TenantSetting,
    apply_changes,
    effective_settings,
    validate_changes,
)
from apps.tenants.crypto import decrypt_secret, encrypt_secret, keyed_hash
from apps.tenants.models import ApiKey, Invitation, Membership, Scope, Tenant
from apps.tenants.rls import whatever_scope_is_set

API_KEY_PREFIX = "dsk"
SUBJECT_ID_MAX_LENGTH = 512

TenantProvisioner = Callable[[Tenant], None]
_provisioners: list[TenantProvisioner] = []


def register_tenant_provisioner(provisioner: TenantProvisioner) -> None:
    """Apps call this from ``AppConfig.ready`` to give every new tenant its defaults
    (purposes, event schema, retention policies...), in the tenant's creating transaction."""
    if provisioner not in _provisioners:
        _provisioners.append(provisioner)


def provision_tenant(tenant: Tenant) -> None:
    """Apply every registered provisioner. Each must be idempotent (seeders re-run it)."""
    for provisioner in _provisioners:
        provisioner(tenant)
    tenant.refresh_from_db(fields=["config_revision"])  # the provisioners changed it


@transaction.atomic
def create_tenant(
    *, slug: str, name: str, default_regime: str = Tenant.Regime.GDPR, contact_email: str = ""
) -> Tenant:
    if slugify(slug) != slug or not slug:
        raise ApplicationError(
            "A tenant slug uses lowercase letters, digits and hyphens.", code="invalid_slug"
        )
    if Tenant.objects.filter(slug=slug).exists():
        raise ApplicationError(f"Tenant '{slug}' already exists.", code="tenant_exists")
    if default_regime not in Tenant.Regime.values:
        raise ApplicationError("Unknown regime.", code="invalid_regime")
    tenant = Tenant(
        slug=slug,
        name=name,
        default_regime=default_regime,
        contact_email=contact_email,
        secret_ciphertext=encrypt_secret(secrets.token_bytes(32)),
    )
    tenant.full_clean()
    tenant.save()
    provision_tenant(tenant)
    return tenant


@transaction.atomic
def add_member(
    *, tenant: Tenant, email: str, role: str = Membership.Role.OWNER, password: str | None = None
) -> Membership:
    """Give a user (created if needed, by email) a role in the tenant. Members are staff so
    they can use the tenant-scoped admin; they are never superusers."""
    if role not in Membership.Role.values:
        raise ApplicationError("Unknown role.", code="invalid_role")
    user_model = get_user_model()
    user = user_model.objects.filter(username=email).first()
    if user is None:
        user = user_model(username=email, email=email, is_staff=True)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    else:
        if password:
            user.set_password(password)
        user.is_staff = True
        user.save()
    membership, _ = Membership.objects.for_tenant(tenant).update_or_create(
        tenant=tenant, user=user, defaults={"role": role}
    )
    return membership


# --- Pseudonymization ---------------------------------------------------------------------

_secret_cache: dict[bytes, bytes] = {}


def _tenant_secret(tenant: Tenant) -> bytes:
    # Keyed by the ciphertext itself: a re-encrypted or rotated secret is never served stale.
    key = bytes(tenant.secret_ciphertext)
    secret = _secret_cache.get(key)
    if secret is None:
        secret = decrypt_secret(tenant.secret_ciphertext)
        _secret_cache[key] = secret
    return secret


def pseudonymize(tenant: Tenant, external_id: str) -> str:
    """The subject key for a client site's subject id: HMAC-SHA256 under the tenant's own
    secret. The same id gives unrelated keys in two tenants, and without the secret (itself
    encrypted under the master key) a key cannot be linked back to a guessed id."""
    if not isinstance(external_id, str) or not external_id.strip():
        raise ApplicationError("A subject id must be a non-empty string.", code="invalid_subject")
    if len(external_id) > SUBJECT_ID_MAX_LENGTH:
        raise ApplicationError(
            f"A subject id is at most {SUBJECT_ID_MAX_LENGTH} characters.", code="invalid_subject"
        )
    return keyed_hash(_tenant_secret(tenant), external_id)


def pseudonymize_many(tenant: Tenant, external_ids: Iterable[str]) -> dict[str, str]:
    secret = _tenant_secret(tenant)
    return {eid: keyed_hash(secret, eid) for eid in set(external_ids)}


# --- API keys -----------------------------------------------------------------------------


def _hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def validate_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in cleaned if s not in Scope.values]
    if unknown:
        raise ApplicationError(
            f"Unknown scope(s): {', '.join(unknown)}.",
            code="invalid_scope",
            details={"unknown": unknown, "known": list(Scope.values)},
        )
    if not cleaned:
        raise ApplicationError("An API key needs at least one scope.", code="invalid_scope")
    return cleaned


@transaction.atomic
def create_api_key(
    *,
    tenant: Tenant,
    name: str,
    scopes: Iterable[str],
    created_by: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with the full secret, which is never retrievable again."""
    if not name.strip():
        raise ApplicationError("An API key needs a name.", code="invalid_name")
    prefix = secrets.token_hex(4)
    raw_key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name.strip(),
        prefix=prefix,
        key_hash=_hash_key(raw_key),
        scopes=validate_scopes(scopes),
        created_by=created_by,
        expires_at=expires_at,
    )
    return api_key, raw_key


def revoke_api_key(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
    return api_key


LAST_USED_RESOLUTION_SECONDS = 60
_LOADED_WITH_KEY = "_loaded_with_api_key"

# all_tenants: the key is what tells us its tenant. The tenant's serving state (a one-to-one
# row) comes in the same query: serving makes none of its own. Compiled once per process:
# it runs on every API request (issue 18).
_API_KEY_BY_PREFIX = PrecompiledLookup(
    lambda prefix: ApiKey.all_tenants.select_related("tenant", "tenant__serving_state")
    .filter(prefix=prefix).order_by("pk"))


def authenticate_api_key(raw_key: str) -> ApiKey | None:
    """The usable key matching ``raw_key``, or ``None``. Constant-time hash comparison;
    ``last_used_at`` is written at most once a minute to keep the hot path read-only.
    The same query reads the tenant's serving state (``tenant.serving_state``, the modeling
    app's one-to-one row), so serving spends no query of its own per request."""
    parts = raw_key.split("_", 2)  # the random part may itself contain "_"
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    with whatever_scope_is_set():  # the previous request's tenant, most often this one's
        api_key = _API_KEY_BY_PREFIX.first(parts[1])
    if api_key is None:
        api_key = _API_KEY_BY_PREFIX.first(parts[1])  # under "all": every tenant's keys
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash_key(raw_key)):
        return None
    setattr(api_key.tenant, _LOADED_WITH_KEY, True)
    if not api_key.is_usable or not api_key.tenant.is_active:
        return None
    now = timezone.now()
    last = api_key.last_used_at
    if last is None or (now - last).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        ApiKey.objects.for_tenant(api_key.tenant_id).filter(pk=api_key.pk).update(
            last_used_at=now)
        api_key.last_used_at = now
    return api_key


def loaded_with_api_key(tenant: Tenant) -> bool:
    """Whether ``tenant`` is an API request's own object, loaded by
    :func:`authenticate_api_key` together with the rows that lookup joins, and this is the
    first time they are asked for: they are as fresh as the request. Answered ``True`` once
    (a later reader in the same request, after a write such as an erasure patch, reads the
    row again). Any other tenant object may hold related rows cached long ago (Django
    caches a reverse one-to-one on first access, and ``None`` on a new tenant)."""
    return tenant.__dict__.pop(_LOADED_WITH_KEY, False)


def tenant_setting(tenant: Tenant, name: str, default: Any) -> Any:
    """A per-tenant setting with the platform default when the tenant has not set it.
    Prefer :func:`setting_value` with the setting's declaration (validated)."""
    return tenant.settings.get(name, default)


def setting_value(tenant: Tenant, setting: TenantSetting) -> Any:
    """The tenant's value of a declared setting (``apps.core.tenant_settings``): the stored
    value when valid, else the declared default."""
    return setting.read(tenant.settings)


# --- Settings -----------------------------------------------------------------------------


@transaction.atomic
def update_tenant_settings(*, tenant: Tenant, changes: Any) -> dict[str, Any]:
    """Apply ``changes`` (``{name: value}``; ``null`` resets a setting to its default) to
    the tenant's settings, all or nothing: every unknown name and bad value is named in one
    ``ApplicationError`` (``details``: errors by field). The change is recorded by
    django-auditlog (``Tenant`` is registered) and anchored in the tenant's audit chain.
    Returns the effective settings."""
    valid, errors = validate_changes(changes)
    if errors:
        raise ApplicationError("Some settings are not valid.", code="invalid_settings",
                               details=errors)
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    new = apply_changes(locked.settings, valid)
    if new != locked.settings:
        locked.settings = new
        locked.save(update_fields=["settings", "updated_at"])
    tenant.settings = locked.settings
    return effective_settings(locked.settings)


# --- Invitations ----------------------------------------------------------------------------

INVITATION_VALID_FOR = timedelta(days=7)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def invite_member(*, tenant: Tenant, email: str, role: str, invited_by: AbstractBaseUser | None,
                  accept_url: Callable[[str], str]) -> Invitation:
    """Invite ``email`` into ``tenant`` with ``role``: an invitation row (recorded by
    django-auditlog, anchored in the tenant's audit chain) and, after commit, an email
    with the single-use link (``accept_url(token)``) through the configured email backend.
    Only a hash of the token is stored. An open invitation of the same address is revoked
    (the newest link is the one that works)."""
    email = get_user_model().objects.normalize_email(email).strip()
    if role not in Membership.Role.values:
        raise ApplicationError(f"Unknown role '{role}'.", code="invalid_role")
    if Membership.objects.for_tenant(tenant).filter(user__username__iexact=email).exists():
        raise ApplicationError(f"{email} is already a member.", code="already_member")
    now = timezone.now()
    for stale in Invitation.objects.for_tenant(tenant).filter(
            email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True):
        stale.revoked_at = now
        stale.save(update_fields=["revoked_at", "updated_at"])
    token = secrets.token_urlsafe(32)
    invitation = Invitation(tenant=tenant, email=email, role=role,
                            token_hash=_hash_token(token), invited_by=invited_by,
                            expires_at=now + INVITATION_VALID_FOR)
    invitation.full_clean()
    invitation.save()
    link = accept_url(token)
    inviter = getattr(invited_by, "email", "") or "A colleague"
    subject = f"You are invited to {tenant.name} on Discreet"
    body = (f"{inviter} invited you to join {tenant.name} on Discreet as {role}.\n\n"
            f"Open this link to choose your password and accept (it works once, until "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{link}\n\n"
            "If you did not expect this invitation, ignore this email.\n")
    transaction.on_commit(lambda: send_mail(subject, body, None, [email]))
    return invitation


def find_invitation(token: str) -> Invitation | None:
    """The open invitation with this token (``None``: unknown, used, revoked or expired).
    Crosses tenants on purpose: the token is what names its tenant, like an API key."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    invitation = (Invitation.all_tenants.select_related("tenant")
                  .filter(token_hash=_hash_token(token)).first())
    if invitation is None or invitation.status != "open" or not invitation.tenant.is_active:
        return None
    return invitation


def invitation_needs_new_account(invitation: Invitation) -> bool:
    return not get_user_model().objects.filter(username__iexact=invitation.email).exists()


@transaction.atomic
def accept_invitation(*, token: str, password: str) -> Membership:
    """Accept an invitation: for a new address, the account is created with ``password``
    (Django's password validators apply); for an existing account, ``password`` must be its
    password. Creates the membership with the invited role; the link then stops working.
    ``ApplicationError``: ``invitation_invalid`` (unknown, used, revoked, expired),
    ``invalid_password``."""
    found = find_invitation(token)
    if found is None:
        raise ApplicationError("This invitation link is not valid any more.",
                               code="invitation_invalid", status_code=404)
    invitation = Invitation.objects.for_tenant(found.tenant_id).select_for_update().get(
        pk=found.pk)
    if invitation.status != "open":  # accepted meanwhile: single use
        raise ApplicationError("This invitation link is not valid any more.",
                               code="invitation_invalid", status_code=404)
    users = get_user_model()
    user = users.objects.filter(username__iexact=invitation.email).first()
    if user is None:
        candidate = users(username=invitation.email, email=invitation.email, is_staff=True)
        try:
            validate_password(password, candidate)
        except ValidationError as exc:
            raise ApplicationError(" ".join(exc.messages), code="invalid_password") from None
        candidate.set_password(password)
        candidate.save()
        user = candidate
    elif not user.check_password(password):
        raise ApplicationError("Enter the password of your existing account.",
                               code="invalid_password")
    elif not user.is_staff:
        user.is_staff = True  # members log into the admin
        user.save(update_fields=["is_staff"])
    membership, _ = Membership.objects.for_tenant(invitation.tenant_id).get_or_create(
        tenant_id=invitation.tenant_id, user=user, defaults={"role": invitation.role})
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    return membership


@transaction.atomic
def revoke_invitation(*, invitation: Invitation) -> Invitation:
    if invitation.status == "open":
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at", "updated_at"])
    return invitation
