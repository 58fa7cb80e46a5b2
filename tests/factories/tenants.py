from __future__ import annotations

import secrets

import factory
from django.contrib.auth import get_user_model

from apps.tenants.crypto import encrypt_secret
from apps.tenants.models import ApiKey, Membership, Scope, Tenant
from apps.tenants.services import create_api_key, provision_tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Tenant {n}")
    secret_ciphertext = factory.LazyFunction(lambda: encrypt_secret(secrets.token_bytes(32)))

    @factory.post_generation
    def provision(self, create: bool, extracted: object, **kwargs: object) -> None:
        """New tenants get every app's defaults, as ``create_tenant`` gives them."""
        if create and extracted is not False:
            provision_tenant(self)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    is_staff = True
    password = factory.django.Password("pw")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.OWNER


def make_api_key(tenant: Tenant, scopes: list[str] | None = None, **kwargs: object
                 ) -> tuple[ApiKey, str]:
    """A real key through the service (the raw key is only known at creation)."""
    return create_api_key(tenant=tenant, name=kwargs.pop("name", "test"),
                          scopes=scopes or list(Scope.values), **kwargs)
