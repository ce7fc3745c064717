"""The recovery sweep and its process's database connection, on SQLite above all.

On SQLite an open cursor is a read transaction pinned to the snapshot it started from: once another
process commits, every write on that connection fails at once with "database is locked" (no busy
timeout helps). Finders yield subjects lazily and the sweep writes between them, so a finder must not
keep a cursor open between rows (`jobkit.recovery.in_pages`, not `.iterator()`: the campaign's embedded
runs lost dozens of sweeps that way). A finder left suspended by a failed sweep is closed, and a job that
failed on the database leaves a new connection to the next job (`jobkit.tasks.release_connections`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.db import DatabaseError, OperationalError, connection, connections, transaction
from django.db.models import F

from jobkit import recovery
from jobkit.models import JobRun
from jobkit.registry import Registry
from jobkit.tasks import release_connections

pytestmark = pytest.mark.django_db(transaction=True)

SUBJECTS = 250  # more than one chunk of a finder's read (chunk_size=200), so its cursor stays open


def sweep_only(finder: recovery.Finder, monkeypatch: pytest.MonkeyPatch) -> None:
    """SUBJECTS timeline rows, and `finder` as the sweep's one finder."""
    JobRun.objects.bulk_create(
        JobRun(task_id=f"t{n}", name="x", queue="default", subject=f"x:{n}", status=JobRun.Status.SUCCEEDED)
        for n in range(SUBJECTS)
    )
    monkeypatch.setattr(recovery, "finders", Registry("recovery finder"))
    recovery.finders.register("runs", finder)


def stuck_runs(cutoff: datetime) -> Iterator[recovery.Stuck]:
    """A finder that keeps a cursor open between rows, as one written with `.iterator()` would."""
    for run in JobRun.objects.order_by("id").iterator(chunk_size=200):
        yield recovery.Stuck(run.subject, [])


def requeue_fails(stuck: recovery.Stuck, lost: list[JobRun]) -> None:
    raise OperationalError("database is locked")


def test_a_sweep_that_fails_leaves_no_open_read_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_only(stuck_runs, monkeypatch)
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


def stuck_runs_in_pages(cutoff: datetime) -> Iterator[recovery.Stuck]:
    """The same finder as the shop's read (jobkit.recovery.in_pages)."""
    for run in recovery.in_pages(JobRun.objects.all()):
        yield recovery.Stuck(run.subject, [])


def test_a_sweep_writes_between_the_rows_a_finder_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_only(stuck_runs_in_pages, monkeypatch)
    other_process = connections.create_connection("default")

    def requeue_while_others_write(stuck: recovery.Stuck, lost: list[JobRun]) -> None:
        with other_process.cursor() as cursor:  # the shop goes on meanwhile: another process commits
            cursor.execute("UPDATE jobkit_jobrun SET retries = retries + 1 WHERE task_id = 't0'")
        with transaction.atomic():  # this sweep's own write, as _requeue makes it
            JobRun.objects.filter(subject=stuck.subject).update(attempts=F("attempts") + 1)

    monkeypatch.setattr(recovery, "_requeue", requeue_while_others_write)
    try:
        report = recovery.sweep(timedelta(0))
    finally:
        other_process.close()

    assert len(report.requeued["runs"]) == SUBJECTS
    assert JobRun.objects.filter(attempts=1).count() == SUBJECTS


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
