"""The base task every job in the shop uses.

A job is thin: it loads ids, calls a service, and lets this class decide about retries and record
the job timeline. Services signal "try again later" by raising `TransientError`; anything else
(including `PermanentError`) ends the job as dead, with its error kept for a human to re-enqueue.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task
from django.conf import settings
from django.db.models import F
from django.db.models.expressions import Combinable
from django.utils import timezone

from jobkit.errors import TransientError
from jobkit.models import JobRun

logger = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


class ShopTask(Task):
    # Retry policy: exponential backoff (doubling from a base, capped), full jitter, bounded attempts.
    autoretry_for = (TransientError,)
    retry_backoff = settings.JOB_RETRY_BACKOFF_SECONDS
    retry_backoff_max = settings.JOB_RETRY_BACKOFF_MAX_SECONDS
    retry_jitter = True
    max_retries = 6
    # What the first positional argument identifies, for the timeline ("order", "invoice", ...).
    subject_kind = "job"
    typing = True

    def subject_for(self, args: tuple[Any, ...] | list[Any]) -> str:
        return f"{self.subject_kind}:{args[0]}" if args else self.subject_kind

    def queue_name(self) -> str:
        route = self.app.conf.task_routes.get(self.name, {})
        return route.get("queue", self.app.conf.task_default_queue)

    # --- job timeline ------------------------------------------------------------------------------------
    def _record(self, task_id: str, args: tuple[Any, ...], **changes: Any) -> None:
        """Update this job's timeline row; never let bookkeeping break the job itself."""
        try:
            updated = JobRun.objects.filter(task_id=task_id).update(**changes)
            if not updated:  # sent without enqueue_on_commit (beat, shell): create the row now
                values = {k: v for k, v in changes.items() if not isinstance(v, Combinable)}
                JobRun.objects.get_or_create(
                    task_id=task_id,
                    defaults={
                        "name": self.name,
                        "queue": self.queue_name(),
                        "subject": self.subject_for(args),
                        "args": list(args),
                        "attempts": 1 if changes.get("status") == JobRun.Status.STARTED else 0,
                        **values,
                    },
                )
        except Exception:
            logger.exception("could not record timeline for %s %s", self.name, task_id)

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._record(
            task_id,
            args,
            status=JobRun.Status.STARTED,
            attempts=F("attempts") + 1,
            started_at=timezone.now(),
            next_retry_at=None,
        )

    def on_success(self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._record(task_id, args, status=JobRun.Status.SUCCEEDED, finished_at=timezone.now(), last_error="")

    def on_retry(
        self, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: Any
    ):
        eta = self.request.eta
        self._record(
            task_id,
            args,
            status=JobRun.Status.RETRYING,
            last_error=describe_error(getattr(exc, "exc", None) or exc),
            next_retry_at=eta or timezone.now() + timedelta(seconds=1),
        )

    def on_failure(
        self, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: Any
    ) -> None:
        logger.error("job %s[%s] is dead: %s", self.name, task_id, describe_error(exc))
        self._record(
            task_id,
            args,
            status=JobRun.Status.DEAD,
            finished_at=timezone.now(),
            last_error=describe_error(exc),
        )
