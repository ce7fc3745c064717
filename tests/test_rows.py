"""update_rows: each row gets its own values, in one statement per chunk, on SQLite (CASE) and PostgreSQL
(UNNEST)."""

from __future__ import annotations

import datetime

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobkit import rows
from jobkit.models import JobRun


def test_each_row_gets_its_own_values_and_no_other_row_changes(db, monkeypatch):
    runs = JobRun.objects.bulk_create(JobRun(task_id=f"t{n}", name="job", queue="default") for n in range(5))
    when = timezone.now().replace(microsecond=123456)
    for n, run in enumerate(runs[:4]):
        run.status = JobRun.Status.SUCCEEDED if n % 2 else JobRun.Status.DEAD
        run.attempts = n + 1
        run.last_error = "" if n % 2 else f"error {n}: it's 'quoted' and long " + "x" * 500
        run.next_retry_at = when + datetime.timedelta(seconds=n) if n < 3 else None  # and a NULL
    monkeypatch.setattr(rows, "ROWS_PER_STATEMENT", 3)  # 4 rows: two statements

    with CaptureQueriesContext(connection) as statements:
        rows.update_rows(runs[:4], ["status", "attempts", "last_error", "next_retry_at"])

    assert len(statements.captured_queries) == 2
    stored = {run.task_id: run for run in JobRun.objects.all()}
    for n in range(4):
        run = stored[f"t{n}"]
        assert run.status == (JobRun.Status.SUCCEEDED if n % 2 else JobRun.Status.DEAD)
        assert run.attempts == n + 1
        assert run.last_error == runs[n].last_error
        assert run.next_retry_at == (when + datetime.timedelta(seconds=n) if n < 3 else None)
    untouched = stored["t4"]
    assert (untouched.status, untouched.attempts, untouched.last_error, untouched.next_retry_at) == (
        JobRun.Status.QUEUED, 0, "", None,
    )  # fmt: skip


def test_nothing_to_write(db):
    with CaptureQueriesContext(connection) as statements:
        rows.update_rows([], ["status"])
    assert statements.captured_queries == []
