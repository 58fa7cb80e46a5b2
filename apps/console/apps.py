from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The tenant console: the admin's theme, sidebar and dashboard, and the landing page.
    It reads every other app through their selectors and writes nothing."""

    name = "apps.console"
    label = "console"
