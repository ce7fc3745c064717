"""A sweep that fails must leave its process's database connection as clean as one that succeeds.

Finders read their subjects lazily (`.iterator()`, a chunk at a time), so a sweep that fails between two
chunks leaves a finder suspended with its cursor open. On SQLite an open cursor is a read transaction
pinned to the snapshot it started from: once another process commits, every write on that connection
fails at once with "database is locked" (no busy timeout helps). The exception's traceback keeps the
finder alive, and Celery keeps the exception while it retries, so the worker's next jobs failed too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.db import DatabaseError, OperationalError, connection, connections

from jobkit import recovery
from jobkit.models import JobRun
from jobkit.registry import Registry
from jobkit.tasks import release_connections

pytestmark = pytest.mark.django_db(transaction=True)

SUBJECTS = 250  # more than one chunk of a finder's read (chunk_size=200), so its cursor stays open


def stuck_runs(cutoff: datetime) -> Iterator[recovery.Stuck]:
    """A finder shaped like the shop's: a chunked read, a Stuck per row."""
    for run in JobRun.objects.order_by("id").iterator(chunk_size=200):
        yield recovery.Stuck(run.subject, [])


def requeue_fails(stuck: recovery.Stuck, lost: list[JobRun]) -> None:
    raise OperationalError("database is locked")


def test_a_sweep_that_fails_leaves_no_open_read_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    JobRun.objects.bulk_create(
        JobRun(task_id=f"t{n}", name="x", queue="default", subject=f"x:{n}", status=JobRun.Status.SUCCEEDED)
        for n in range(SUBJECTS)
    )
    monkeypatch.setattr(recovery, "finders", Registry("recovery finder"))
    recovery.finders.register("runs", stuck_runs)
    monkeypatch.setattr(recovery, "_requeue", requeue_fails)

    with pytest.raises(OperationalError) as failure:
        recovery.sweep(timedelta(0))
    assert failure.value  # held, as Celery holds a failed job's exception while it retries

    other_process = connections.create_connection("default")
    try:
        with other_process.cursor() as cursor:  # another process commits meanwhile
            cursor.execute("UPDATE jobkit_jobrun SET attempts = 1 WHERE task_id = 't0'")
    finally:
        other_process.close()

    # This process writes next: on SQLite, with the finder still reading, "database is locked".
    assert JobRun.objects.filter(task_id="t1").update(attempts=2) == 1


def test_a_connection_that_saw_a_database_error_is_closed_after_the_job() -> None:
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    assert connection.connection is not None

    release_connections()

    assert connection.connection is None  # the next job opens a new one
    assert JobRun.objects.count() == 0


def test_a_healthy_connection_is_kept_between_jobs() -> None:
    JobRun.objects.count()
    kept = connection.connection

    release_connections()

    assert kept is not None and connection.connection is kept
