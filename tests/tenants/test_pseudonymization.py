from __future__ import annotations

import hashlib

import pytest
from cryptography.fernet import InvalidToken
from django.core.management import call_command
from django.test import override_settings

from apps.core.exceptions import ApplicationError
from apps.tenants.crypto import decrypt_secret
from apps.tenants.models import Tenant
from apps.tenants.services import _secret_cache, create_tenant, pseudonymize, pseudonymize_many
from tests.db_search import columns_containing


def test_subject_key_is_stable_within_a_tenant_and_unlinkable_across(tenant, other_tenant):
    key = pseudonymize(tenant, "alice@example.com")
    assert key == pseudonymize(tenant, "alice@example.com")
    assert key != pseudonymize(other_tenant, "alice@example.com")
    assert key != hashlib.sha256(b"alice@example.com").hexdigest()  # not a plain hash
    assert len(key) == 64


def test_batch_pseudonymization_matches_single(tenant):
    assert pseudonymize_many(tenant, ["a", "b", "a"]) == {
        "a": pseudonymize(tenant, "a"), "b": pseudonymize(tenant, "b")}


@pytest.mark.parametrize("bad", ["", "   ", "x" * 513, None, 42])
def test_invalid_subject_ids_are_refused(tenant, bad):
    with pytest.raises(ApplicationError) as err:
        pseudonymize(tenant, bad)
    assert err.value.code == "invalid_subject"


def test_the_secret_is_stored_only_encrypted_under_the_master_key(db):
    tenant = create_tenant(slug="acme", name="Acme")
    secret = decrypt_secret(Tenant.objects.get(pk=tenant.pk).secret_ciphertext)
    assert len(secret) == 32
    assert not columns_containing(secret.hex())
    assert secret not in bytes(tenant.secret_ciphertext)
    with override_settings(DISCREET_MASTER_KEY="another-master-key"), pytest.raises(InvalidToken):
        decrypt_secret(tenant.secret_ciphertext)


def test_master_key_rotation_keeps_subject_keys(db):
    tenant = create_tenant(slug="acme", name="Acme")
    before = pseudonymize(tenant, "subject-1")
    with override_settings(DISCREET_MASTER_KEY="new-master-key",
                           DISCREET_MASTER_KEY_PREVIOUS=["test-only-master-key-0123456789abcdef"]):
        call_command("rotate_master_key")
    _secret_cache.clear()
    with override_settings(DISCREET_MASTER_KEY="new-master-key"):
        assert pseudonymize(Tenant.objects.get(pk=tenant.pk), "subject-1") == before


def test_slugs_are_validated_and_unique(db):
    create_tenant(slug="acme", name="Acme")
    with pytest.raises(ApplicationError) as err:
        create_tenant(slug="acme", name="Again")
    assert err.value.code == "tenant_exists"
    with pytest.raises(ApplicationError) as err:
        create_tenant(slug="Not A Slug", name="x")
    assert err.value.code == "invalid_slug"
