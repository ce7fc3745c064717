from celery import signals
from django.apps import AppConfig


class JobkitConfig(AppConfig):
    name = "jobkit"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobkit.tasks import freeze_startup_objects, release_connections, skip_health_checks

        # Before and after each job, as Django does around each request (weak=False: a plain function).
        signals.task_prerun.connect(release_connections, weak=False)
        signals.task_postrun.connect(release_connections, weak=False)
        # Once in each pool process, before its first job.
        signals.worker_process_init.connect(skip_health_checks, weak=False)
        signals.worker_process_init.connect(freeze_startup_objects, weak=False)
