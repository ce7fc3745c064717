"""Daily maintenance prunes what has outlived its use, once per day, however often it is started."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone

from apikit.models import IdempotencyRecord
from jobkit.models import JobExecution, JobRun
from shop import jobs, maintenance
from tests.harness import Stack, wait_for

pytestmark = pytest.mark.e2e

# With a handful of rows a run takes ~10-30 ms and the two start up to ~20 ms apart: they overlap only
# sometimes. Pruning this many takes ~0.4 s, so the second run starts while the first still works.
OLD_JOB_RUNS = 200_000


def copy_job_run(task_id: str, copies: int) -> None:
    """`copies` more rows like this one, named f"{task_id}-{n}", in one statement (the ORM takes seconds)."""
    table = JobRun._meta.db_table
    columns = [f.column for f in JobRun._meta.concrete_fields if f.name not in ("id", "task_id")]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"INSERT INTO {table} (task_id, {', '.join(columns)}) "
            f"SELECT %s || '-' || n.i, {', '.join(f's.{c}' for c in columns)} "
            f"FROM n, {table} AS s WHERE s.task_id = %s",
            [copies, task_id, task_id],
        )


def returned(stack: Stack, task_id: str) -> str:
    """What a job returned, from the log of the worker that ran it (Celery logs each success)."""
    pattern = re.compile(rf"Task shop\.daily_maintenance\[{task_id}\] succeeded in [\d.]+s: (.*)")

    def logged() -> str | None:
        for child in stack.workers:
            found = pattern.findall(child.log_path.read_text(errors="replace"))
            if found:
                return found[-1]
        return None

    # The line is logged just after the timeline row says succeeded.
    return wait_for(logged, 10, lambda: f"no success logged for {task_id}\n{stack.logs()}")


def test_two_concurrent_maintenance_runs_overlap_and_prune_once(workers):
    workers.add_worker("second-worker")
    now = timezone.now()
    old, fresh = now - timedelta(days=40), now - timedelta(hours=1)
    done = {"name": "orders.reserve_stock", "queue": "default", "subject": "order:x", "status": "succeeded"}
    JobRun.objects.create(task_id="old", **done)
    JobRun.objects.filter(task_id="old").update(updated_at=old)
    copy_job_run("old", OLD_JOB_RUNS - 1)
    JobRun.objects.create(task_id="fresh", **done)
    JobRun.objects.filter(task_id="fresh").update(updated_at=fresh)
    Session.objects.create(session_key="expired", session_data="", expire_date=now - timedelta(days=1))
    Session.objects.create(session_key="current", session_data="", expire_date=now + timedelta(days=1))
    IdempotencyRecord.objects.create(scope="orders.order", key="old", fingerprint="x", resource_id="r")
    IdempotencyRecord.objects.filter(key="old").update(created_at=now - timedelta(days=2))
    IdempotencyRecord.objects.create(scope="orders.order", key="new", fingerprint="x", resource_id="r")

    for _ in range(2):  # as from two beat processes at once
        jobs.daily_maintenance.delay()
    runs = JobRun.objects.filter(name="shop.daily_maintenance")
    wait_for(lambda: runs.filter(status="succeeded").count() == 2, 60, workers.logs)

    first, second = runs.order_by("started_at")
    assert second.started_at < first.finished_at, f"no overlap: {first.as_dict()} {second.as_dict()}"
    outcomes = sorted(returned(workers, run.task_id) for run in (first, second))
    pruned = {"job_runs": OLD_JOB_RUNS, "expired_carts": 1, "idempotency_records": 1, "unique_keys": 0}
    assert outcomes == ["None", repr(pruned)]  # one run pruned, the other found the day claimed

    [claim] = JobExecution.objects.filter(key=f"maintenance:{timezone.localdate().isoformat()}")
    assert claim.result == pruned
    assert list(JobRun.objects.exclude(name="shop.daily_maintenance").values_list("task_id", flat=True)) == [
        "fresh"
    ]
    assert list(Session.objects.values_list("session_key", flat=True)) == ["current"]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    assert maintenance.run_daily(timezone.localdate()) is None  # a manual re-run the same day
