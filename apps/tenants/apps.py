from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "apps.tenants"
    label = "tenants"

    def ready(self) -> None:
        from auditlog.registry import auditlog
        from django.core import checks
        from django.db.models.signals import post_migrate

        from apps.tenants import schema  # noqa: F401 - registers the OpenAPI auth scheme
        from apps.tenants.models import ApiKey, Invitation, Membership, Tenant
        from apps.tenants.rls import apply_after_migrate, check_database_role
        from apps.tenants.scoping import check_tenant_managers
        from apps.tenants.throttling import check_throttle_cache, check_throttle_cache_is_shared

        checks.register(check_tenant_managers, checks.Tags.models)
        checks.register(check_throttle_cache, checks.Tags.caches)
        checks.register(check_throttle_cache_is_shared, checks.Tags.caches, deploy=True)
        checks.register(check_database_role, checks.Tags.database, deploy=True)
        # Row-level security for every tenant-owned table, new ones included (rls.py).
        post_migrate.connect(apply_after_migrate, sender=self,
                             dispatch_uid="tenants.row_level_security")

        # Configuration changes are captured by django-auditlog; secrets never enter the log.
        auditlog.register(Tenant, exclude_fields=["secret_ciphertext"])
        auditlog.register(Membership)
        auditlog.register(ApiKey, exclude_fields=["key_hash", "last_used_at"])
        auditlog.register(Invitation, exclude_fields=["token_hash"])
