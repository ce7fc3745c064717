from celery import signals
from django.apps import AppConfig


class JobkitConfig(AppConfig):
    name = "jobkit"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobkit.tasks import release_connections

        # Before and after each job, as Django does around each request (weak=False: a plain function).
        signals.task_prerun.connect(release_connections, weak=False)
        signals.task_postrun.connect(release_connections, weak=False)
