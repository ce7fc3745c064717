"""The base task every job in the shop uses.

A job is thin: it loads ids, calls a service, and lets this class decide about retries and record
the job timeline. Services signal "try again later" by raising `TransientError`; anything else
(including `PermanentError`) ends the job as dead, with its error kept for a human to re-enqueue.

`Deferred` (an open circuit breaker, a lease another worker holds) is not a failure of the job: the
job is sent again for when the call may go through, with its retry count unchanged, until a deadline
passes.
"""

from __future__ import annotations

import functools
import gc
import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn

import redis
from celery import Task
from celery.exceptions import Retry
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, connections
from django.db.models import F
from django.db.models.expressions import Combinable
from django.utils import timezone

from jobkit.errors import Deferred, PermanentError, TransientError
from jobkit.models import JobRun
from jobkit.prepared import Arg, PreparedUpdate
from jobkit.registry import Registry

logger = logging.getLogger(__name__)

# What runs when a job dies, by task name, called with the job's arguments (e.g. start compensation).
dead_job_handlers: Registry[Callable[..., None]] = Registry("dead-job handler")


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def retry_delay(retries: int) -> int:
    """Seconds before retry number `retries + 1`: exponential backoff from JOB_RETRY_BACKOFF_SECONDS,
    capped at JOB_RETRY_BACKOFF_MAX_SECONDS, with full jitter (a random point below the cap, so jobs that
    failed together do not retry together). Read when a job fails, never at import."""
    base = getattr(settings, "JOB_RETRY_BACKOFF_SECONDS", 2)
    cap = getattr(settings, "JOB_RETRY_BACKOFF_MAX_SECONDS", 300)
    return get_exponential_backoff_interval(base, retries, cap, full_jitter=True)


def release_connections(**_signal: object) -> None:
    """Before and after each job: keep the process's connection while it is younger than DB_CONN_MAX_AGE
    and healthy (Celery's own per-job close is off: CELERY_DB_REUSE_MAX), close it after a database error.

    Django's `close_old_connections` keeps a connection that saw an error if it still answers, and SQLite's
    always does, although what broke it (an open read pinned to an old snapshot, a half-done statement) may
    stay. A job that failed on the database therefore leaves a new connection to the next job and its own
    retry, on every backend. Integrity errors do not count: they are answers (a unique key already taken).
    """
    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred and not conn.in_atomic_block:
            conn.close()
    close_old_connections()


def skip_health_checks(**_signal: object) -> None:
    """In a worker's pool process: no health check query (`SELECT 1`) before each job. A job's first
    query is its timeline write (`JobTask.before_start`), which retries once on a new connection when
    the old one was dropped (`JobTask._record`): the check would repeat that, one round trip per job.
    Web requests keep the check, as Django does: a request has no such first write to fall back on."""
    for conn in connections.all():
        conn.settings_dict["CONN_HEALTH_CHECKS"] = False
        conn.health_check_enabled = False


def freeze_startup_objects(**_signal: object) -> None:
    """In a worker's pool process: take the objects that exist when it starts (Django, the apps, Celery,
    the modules jobs import) out of the garbage collector's sight; they live as long as the process. A
    full collection then walks only what jobs made: in the pipeline benchmark (`benchmarks/pipeline.py`)
    18 ms instead of 120 ms, a few times per hundred orders in each process."""
    gc.freeze()


# The start's increment, one expression for every start: `_timeline_update` is cached by its fields' changes,
# and a new expression would be hashed anew at each start (Django derives an expression's hash from its
# constructor's arguments: 27 us, against 1 us for this one, whose hash Django keeps).
_ONE_MORE_ATTEMPT = F("attempts") + 1


@functools.cache
def _timeline_update(shape: tuple[tuple[str, Combinable | None], ...]) -> PreparedUpdate:
    """The UPDATE of a job's timeline row for one set of changed fields (an expression, such as the
    attempts' increment, or None for a value given at each call), prepared once (`jobkit/prepared.py`):
    every job writes two, as it starts and as it ends."""
    field = JobRun._meta.get_field
    values = {name: Arg(name, field(name)) if change is None else change for name, change in shape}
    return PreparedUpdate(lambda: JobRun.objects.filter(task_id=Arg("task_id", field("task_id"))), **values)


class JobTask(Task):
    """The base of every job: one retry policy, deferrals, the job timeline, dead-job handlers."""

    # Worth a retry: TransientError from outside calls (jobkit/outside.py), the broker or Redis
    # unreachable, and the database lost (connection dropped, server restarted, SQLite busy): the job's
    # transaction rolled back, and `release_connections` closes a connection that saw a database error
    # after the job, so the retry starts clean on a new one. Anything else ends the job as dead.
    retry_on: tuple[type[BaseException], ...] = (
        TransientError,
        redis.ConnectionError,
        redis.TimeoutError,
        OperationalError,
        InterfaceError,
    )
    max_retries = 6
    # What the first positional argument identifies, for the timeline ("order", "invoice", ...).
    subject_kind = "job"
    typing = True

    def subject_for(self, args: tuple[Any, ...] | list[Any]) -> str:
        return f"{self.subject_kind}:{args[0]}" if args else self.subject_kind

    def queue_name(self) -> str:
        route = self.app.conf.task_routes.get(self.name, {})
        return route.get("queue", self.app.conf.task_default_queue)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Deferred as exc:
            self.defer(exc)
        except self.retry_on as exc:
            if self.request.called_directly or self.request.retries >= self.max_retries:
                raise  # the budget is spent: dead (on_failure records it and calls its handler)
            raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc

    def defer(self, exc: Deferred) -> NoReturn:
        """Send this job again for when the call may go through; the retry budget is not touched."""
        request = self.request
        headers = dict(request.headers or {})
        since = float(headers.get("deferred_since") or time.time())
        waited = time.time() - since
        if waited > settings.JOB_DEFER_DEADLINE_SECONDS:
            raise PermanentError(f"still deferred after {waited:.0f}s: {exc.reason}") from exc
        # Jitter spreads the deferred jobs out, so they do not all knock at once when the call may go.
        delay = exc.retry_after + random.uniform(0, settings.JOB_DEFER_JITTER_SECONDS)
        headers.update(deferred_since=since, deferrals=int(headers.get("deferrals", 0)) + 1)
        again = self.signature_from_request(
            request, countdown=delay, retries=request.retries, headers=headers
        )
        again.apply_async()
        raise Retry(exc=exc, when=delay, sig=again)

    # --- job timeline ------------------------------------------------------------------------------------
    def _record(self, task_id: str, args: tuple[Any, ...], **changes: Any) -> None:
        """Update this job's timeline row; never let bookkeeping break the job itself.

        A job that failed because its database connection was cut would lose its `dead` or `retrying`
        mark on that same dead connection: drop a broken connection and try once more on a new one."""
        changes["updated_at"] = timezone.now()
        for last_try in (False, True):
            try:
                self._write_timeline(task_id, args, changes)
            except (OperationalError, InterfaceError):
                if not last_try:
                    connection.close_if_unusable_or_obsolete()
                    continue
                logger.exception("could not record timeline for %s %s", self.name, task_id)
            except Exception:
                logger.exception("could not record timeline for %s %s", self.name, task_id)
            return

    def _write_timeline(self, task_id: str, args: tuple[Any, ...], changes: dict[str, Any]) -> None:
        values = {name: value for name, value in changes.items() if not isinstance(value, Combinable)}
        shape = tuple((name, None if name in values else change) for name, change in changes.items())
        updated = _timeline_update(shape)(task_id=task_id, **values)
        if not updated:  # sent without enqueue_on_commit (beat, shell): create the row now
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

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._record(
            task_id,
            args,
            status=JobRun.Status.STARTED,
            attempts=_ONE_MORE_ATTEMPT,
            retries=self.request.retries,
            started_at=timezone.now(),
            next_retry_at=None,
        )

    def on_success(self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._record(task_id, args, status=JobRun.Status.SUCCEEDED, finished_at=timezone.now(), last_error="")

    def on_retry(
        self, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: Any
    ) -> None:
        when = getattr(exc, "when", None)  # Retry carries the countdown (seconds) or the eta
        next_at = timezone.now() + timedelta(seconds=when) if isinstance(when, int | float) else when
        self._record(
            task_id,
            args,
            status=JobRun.Status.RETRYING,
            last_error=describe_error(getattr(exc, "exc", None) or exc),
            next_retry_at=next_at,
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
        handler = dead_job_handlers.get(self.name)
        if handler is not None:
            try:
                handler(*args)
            except Exception:
                logger.exception("the dead-job handler of %s[%s] failed", self.name, task_id)
