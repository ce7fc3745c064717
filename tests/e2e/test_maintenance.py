"""Daily maintenance prunes what has outlived its use, once per day, however often it is started."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from jobkit.models import JobExecution, JobRun
from shop import jobs, maintenance
from shop.models import IdempotencyRecord
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_two_concurrent_maintenance_runs_prune_once(client, workers):
    workers.add_worker("second-worker")
    now = timezone.now()
    old, fresh = now - timedelta(days=40), now - timedelta(hours=1)
    for n, when in enumerate((old, old, fresh)):
        run = {
            "name": "orders.process_order",
            "queue": "default",
            "subject": "order:x",
            "status": "succeeded",
        }
        JobRun.objects.create(task_id=f"t{n}", **run)
        JobRun.objects.filter(task_id=f"t{n}").update(updated_at=when)
    Session.objects.create(session_key="expired", session_data="", expire_date=now - timedelta(days=1))
    Session.objects.create(session_key="current", session_data="", expire_date=now + timedelta(days=1))
    IdempotencyRecord.objects.create(scope="orders", key="old", fingerprint="x", resource_id="r")
    IdempotencyRecord.objects.filter(key="old").update(created_at=now - timedelta(days=2))
    IdempotencyRecord.objects.create(scope="orders", key="new", fingerprint="x", resource_id="r")

    for _ in range(2):  # as from two beat processes at once
        jobs.daily_maintenance.delay()
    runs = JobRun.objects.filter(name="shop.daily_maintenance")
    wait_for(lambda: runs.count() == 2 and all(r.status == "succeeded" for r in runs), 30, workers.logs)

    [claim] = JobExecution.objects.filter(key=f"maintenance:{timezone.localdate().isoformat()}")
    assert claim.result == {"job_runs": 2, "expired_carts": 1, "idempotency_records": 1, "unique_keys": 0}
    assert sorted(JobRun.objects.filter(task_id__startswith="t").values_list("task_id", flat=True)) == ["t2"]
    assert list(Session.objects.values_list("session_key", flat=True)) == ["current"]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    assert maintenance.run_daily(timezone.localdate()) is None  # a manual re-run the same day
