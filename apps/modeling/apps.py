from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "apps.modeling"
    label = "modeling"
