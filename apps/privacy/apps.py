from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "apps.privacy"
    label = "privacy"
    verbose_name = "Privacy requests"
    # Its subject data is declared in apps/privacy/subject_data.py. Not registered with
    # django-auditlog on purpose: its change log would copy the subject key of every
    # request; services write the domain audit trail instead.

    def ready(self) -> None:
        from apps.modeling.services import register_activation_listener, register_version_guard
        from apps.privacy.demo import portal_banner, seed_demo_requests
        from apps.privacy.services.receipts import erasure_refers_to_version, on_model_activated
        from apps.tenants.demo import register_demo_banner, register_demo_seeder

        # An erasure receipt becomes final once a model trained without the subject is in
        # service: each activation triggers the check (the hourly reconcile backs it up).
        register_activation_listener(on_model_activated)
        register_demo_seeder(seed_demo_requests)  # the console's queue has something to show
        register_demo_banner(portal_banner)  # make run prints a link into the portal
        # A version an unfinished erasure refers to is retired, never deleted.
        register_version_guard(erasure_refers_to_version)
