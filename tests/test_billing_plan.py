"""subscriptions.renewals.plan_run, in-process: the due subscriptions cut into id-range batches that tile
them once each, twenty batches per transaction, and planning that outlasts its time goes on in the job's
next run. What the batches then bill is tests/e2e/test_batch_billing.py's to prove, through a worker."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from jobkit.errors import Deferred
from jobkit.models import JobRun
from shop.factories import due_subscriptions
from subscriptions import renewals
from subscriptions.models import BillingRun

pytestmark = pytest.mark.django_db

DUE = datetime.date(2031, 3, 1)


def test_planning_past_its_time_goes_on_in_the_next_run_and_tiles_the_due_subscriptions(
    plans: list, settings: Any
):
    plan = next(p for p in plans if p.code == "coffee-monthly")
    ids = sorted(s.pk for s in due_subscriptions(plan, 4510, DUE, tag="plan"))
    run = BillingRun.objects.create(billing_date=DUE, batch_size=100)
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 0  # out of time after every transaction

    runs_of_the_job = 1
    while True:
        try:
            renewals.plan_run(run.pk)
            break
        except Deferred as deferred:
            assert deferred.retry_after == 0  # sent again at once
            runs_of_the_job += 1

    # 4,510: a first batch of 50, then 45 of up to 100; twenty per transaction, one transaction per run
    batches = list(run.batches.order_by("number"))
    assert runs_of_the_job == 3
    assert [b.number for b in batches] == list(range(1, 47))
    assert [b.after_id for b in batches] == [0] + [b.last_id for b in batches[:-1]]
    assert batches[0].last_id == ids[49] and batches[-1].last_id == ids[-1]
    assert all(b.last_id == ids[49 + 100 * (b.number - 1)] for b in batches[:-1])
    run.refresh_from_db()
    assert (run.status, run.batches_total) == (BillingRun.Status.RUNNING, 46)
    billing_jobs = JobRun.objects.filter(name="subscriptions.bill_batch").values_list("args", flat=True)
    assert sorted(args[0] for args in billing_jobs) == sorted(b.pk for b in batches)  # one job each


def test_planning_in_time_is_one_run(plans: list):
    plan = next(p for p in plans if p.code == "coffee-monthly")
    due_subscriptions(plan, 250, DUE, tag="plan")
    run = BillingRun.objects.create(billing_date=DUE, batch_size=100)

    renewals.plan_run(run.pk)

    run.refresh_from_db()
    assert (run.status, run.batches_total, run.batches.count()) == (BillingRun.Status.RUNNING, 3, 3)
