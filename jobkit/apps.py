from django.apps import AppConfig


class JobkitConfig(AppConfig):
    name = "jobkit"
    verbose_name = "Jobs"
