from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "apps.events"
    label = "events"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from apps.events.demo import seed_demo_events
        from apps.events.models import EventProperty, EventType, Item, ItemAttribute
        from apps.events.services import provision_event_schema
        from apps.tenants.config_memo import watch_tenant_config
        from apps.tenants.demo import register_demo_seeder
        from apps.tenants.services import register_tenant_provisioner

        # Every tenant starts with the default schema (view 1, click 2, add_to_cart 4,
        # purchase 8, rating = its value; all for "personalization").
        register_tenant_provisioner(provision_event_schema)
        # The schema and the catalog are configuration: admin edits are audited.
        # (Bulk catalog writes bypass these signals; the service audits them itself.)
        auditlog.register(EventType)
        auditlog.register(EventProperty)
        # Ingestion memoizes the schema per configuration revision (next batch sees edits).
        watch_tenant_config(EventType)
        watch_tenant_config(EventProperty)
        watch_tenant_config(Item, saves=False)  # its memoized pk is gone with the row
        auditlog.register(ItemAttribute)
        auditlog.register(Item)
        register_demo_seeder(seed_demo_events)
