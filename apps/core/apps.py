from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        from apps.core.subject_data import discover

        # Every app's subject_data module declares its stores; reading them once here makes
        # a declaration that leaves a right out fail at start-up. Core is the first app, so
        # this runs after every model is loaded and before any other app's ready().
        discover()

        from django.core import checks

        from apps.core.site_middleware import check_csrf_middleware

        checks.register(check_csrf_middleware, checks.Tags.security, deploy=True)
