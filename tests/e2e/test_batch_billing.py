"""Pattern 4: batch billing. One run per date, keyset batches, one invoice per subscription period,
exact counters, and re-runs or a killed worker never bill anybody twice; at the gateway's rate limit
(pattern 8), with many calls in flight."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import CommandError, call_command

from billing.models import PaymentAttempt
from jobkit.breaker import breaker_for
from jobkit.models import JobExecution, JobRun
from jobkit.ratelimit import limiter_for
from notifications.models import Reminder
from shop.factories import due_subscriptions
from subscriptions import jobs, renewals
from subscriptions.models import BillingRun, Subscription
from subscriptions.periods import add_month
from tests.conftest import STANDARD_WORKER
from tests.harness import jobs_idle, wait_for

pytestmark = pytest.mark.e2e

BILLING_DATE = datetime.date(2026, 12, 1)


def make_due_subscriptions(plan, count: int, declining_every: int = 20) -> list[Subscription]:
    return due_subscriptions(plan, count, BILLING_DATE, tag="bulk", declining_every=declining_every)


def wait_for_run(stack, timeout: float = 180) -> BillingRun:
    run = wait_for(lambda: BillingRun.objects.filter(billing_date=BILLING_DATE).first(), 30, stack.logs)
    return wait_for(
        lambda: BillingRun.objects.filter(pk=run.pk, status="done").first(),
        timeout,
        lambda: f"{BillingRun.objects.filter(pk=run.pk).values().first()}\n{stack.logs()}",
    )


def charges(sandbox) -> list[dict]:
    return [pi for pi in sandbox.payment_intents() if "subscription_id" in pi["metadata"]]


def test_billing_1000_subscriptions_once_with_exact_counters(client, workers, plans, settings):
    workers.add_worker("second-worker")
    settings.BILLING_BATCH_SIZE = 100  # eleven batches for the two workers to share
    plan = plans[1]
    make_due_subscriptions(plan, 1000)
    call_command("bill_due", date=BILLING_DATE.isoformat())
    run = wait_for_run(workers)

    # one charge per subscription: 950 successes and 50 declines, nobody charged or declined twice
    by_subscription = [pi["metadata"]["subscription_id"] for pi in charges(workers.sandbox)]
    assert len(by_subscription) == len(set(by_subscription)) == 1000
    assert (run.batches_total, run.batches_done, run.batches_failed) == (11, 11, 0)  # 50, 9 x 100, 50
    assert (run.subscriptions_billed, run.subscriptions_failed) == (950, 50)
    assert run.amount_billed == 950 * plan.price
    succeeded = [pi for pi in charges(workers.sandbox) if pi["status"] == "succeeded"]
    assert len(succeeded) == len({pi["metadata"]["subscription_id"] for pi in succeeded}) == 950
    assert (
        Subscription.objects.filter(status="active", current_period_end=add_month(BILLING_DATE)).count()
        == 950
    )
    past_due = Subscription.objects.filter(status="past_due")
    assert past_due.count() == 50
    assert Reminder.objects.filter(status="pending").count() == 150  # three each, as rows, not countdowns

    # The same date again (command, beat, a re-delivered batch): nothing changes.
    before = charges(workers.sandbox)
    call_command("bill_due", date=BILLING_DATE.isoformat())
    jobs.start_billing_run.delay(BILLING_DATE.isoformat())
    for batch in run.batches.all():
        jobs.bill_batch.delay(batch.pk)
    wait_for(jobs_idle, 60, workers.logs)
    assert BillingRun.objects.count() == 1
    assert charges(workers.sandbox) == before
    run.refresh_from_db()
    assert (run.subscriptions_billed, run.subscriptions_failed, run.batches_done) == (950, 50, 11)


def test_a_run_against_a_rate_limiting_gateway_bills_everyone_once(client, workers, plans, settings):
    settings.BILLING_BATCH_SIZE = 40
    [standard] = workers.workers
    workers.stop_worker(standard)
    # Our limit above the gateway's (an account whose budget others share): the gateway answers 429s.
    workers.add_worker("limited-worker", GATEWAY_RATE_LIMIT_PER_SECOND="15")
    workers.sandbox.set_fault("payments", rate_limit_per_second=10)
    plan = plans[0]
    make_due_subscriptions(plan, 150, declining_every=15)
    call_command("bill_due", date=BILLING_DATE.isoformat())
    run = wait_for_run(workers, timeout=120)

    # the gateway refused some calls, and our limiter slowed down for them
    stats = workers.sandbox.stats()["payments"]
    limiter = limiter_for("payments").snapshot()
    assert stats["rejected"] >= 1 and limiter["slowdowns"] >= 1, (stats, limiter)
    # everybody billed once: one PaymentIntent each (the refused calls created none), 140 paid, 10 declined
    by_subscription = [pi["metadata"]["subscription_id"] for pi in charges(workers.sandbox)]
    assert len(by_subscription) == len(set(by_subscription)) == 150
    assert stats["received"] == 150 + stats["rejected"]
    succeeded = [pi for pi in charges(workers.sandbox) if pi["status"] == "succeeded"]
    assert len(succeeded) == len({pi["metadata"]["subscription_id"] for pi in succeeded}) == 140
    assert (run.subscriptions_billed, run.subscriptions_failed, run.amount_billed) == (
        140,
        10,
        140 * plan.price,
    )
    assert (run.batches_total, run.batches_done, run.batches_failed) == (5, 5, 0)  # 20, 3 x 40, 10
    # a 429 is deferred, not failed: no job died or spent a retry, and the breaker saw no failure
    batch_jobs = JobRun.objects.filter(name="subscriptions.bill_batch")
    assert not JobRun.objects.filter(status="dead").exists()
    assert set(batch_jobs.values_list("retries", flat=True)) == {0}
    assert breaker_for("payments").snapshot()["failures"] == 0
    # The back-off keeps the 429s few: without it, 15 calls a second against 10 would meet a 429 for one
    # call in three.
    assert stats["rejected"] <= 150 // 5, stats


def bill_100_until_the_crash_point(workers, plans, settings, point: str):
    """A run of 100 subscriptions (batches of 25, 50 and 25), on a worker that dies at `point`
    (jobkit/crash.py)."""
    settings.BILLING_BATCH_SIZE = 50
    [standard] = workers.workers
    workers.stop_worker(standard)
    doomed, _ = workers.add_crashing_worker(point)
    make_due_subscriptions(plans[0], 100, declining_every=0)
    call_command("bill_due", date=BILLING_DATE.isoformat())
    wait_for(lambda: not doomed.alive(), 60, workers.logs)
    return doomed


def resume_after_the_crash(workers, doomed) -> None:
    """A healthy worker, and a beat whose sweep sends back the batch whose message died with the worker:
    the run ends done with all three batches and all 100 billed."""
    workers.stop_worker(doomed)
    workers.add_worker(STANDARD_WORKER)
    workers.add_beat("beat")
    run = wait_for_run(workers)
    assert (run.subscriptions_billed, run.batches_total, run.batches_done) == (100, 3, 3)


def test_worker_killed_after_staging_a_batch_sends_the_staged_attempts(client, workers, plans, settings):
    doomed = bill_100_until_the_crash_point(workers, plans, settings, "after_billing_batch_staged")
    # Killed with a batch's invoices and payment attempts (their keys) committed, before any call.
    assert charges(workers.sandbox) == []
    staged = set(PaymentAttempt.objects.values_list("pk", "status"))
    assert len(staged) in (25, 50, 75) and {status for _, status in staged} == {"pending"}

    resume_after_the_crash(workers, doomed)
    # The staged attempts were sent as they were, with their keys: one attempt per invoice, all paid.
    attempts = PaymentAttempt.objects.all()
    assert {pk for pk, _ in staged} <= set(attempts.values_list("pk", flat=True))
    assert attempts.count() == attempts.filter(status="succeeded").count() == 100
    succeeded = [pi for pi in charges(workers.sandbox) if pi["status"] == "succeeded"]
    assert len(succeeded) == len({pi["metadata"]["subscription_id"] for pi in succeeded}) == 100
    assert sorted(pi["id"] for pi in succeeded) == sorted(
        attempts.values_list("gateway_reference", flat=True)
    )


def test_worker_killed_after_the_gateway_answered_records_the_saved_answers(client, workers, plans, settings):
    doomed = bill_100_until_the_crash_point(workers, plans, settings, "after_billing_batch_called")
    # Killed with charges made at the gateway and none of them recorded.
    assert len(charges(workers.sandbox)) >= 1
    assert set(PaymentAttempt.objects.values_list("status", flat=True)) == {"pending"}

    resume_after_the_crash(workers, doomed)
    # The re-sent keys got the gateway's saved answers: still one PaymentIntent per subscription.
    by_subscription = [pi["metadata"]["subscription_id"] for pi in charges(workers.sandbox)]
    assert len(by_subscription) == len(set(by_subscription)) == 100
    assert PaymentAttempt.objects.filter(status="succeeded").count() == PaymentAttempt.objects.count() == 100


def test_bill_due_refuses_a_malformed_date(db):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("bill_due", date="01/12/2026")
    assert not BillingRun.objects.exists()


def test_a_failed_batch_is_retried_alone(client, e2e, plans):
    subs = make_due_subscriptions(plans[0], 20, declining_every=0)
    run = BillingRun.objects.create(
        billing_date=BILLING_DATE, status="running", batch_size=10, batches_total=2
    )
    done = run.batches.create(number=1, after_id=0, last_id=subs[9].pk, status="done")
    failed = run.batches.create(number=2, after_id=subs[9].pk, last_id=subs[-1].pk, status="failed")
    assert renewals.retry_failed_batches(run.pk) == 1
    run = wait_for_run(e2e)
    assert (run.batches_done, run.batches_failed, run.subscriptions_billed) == (
        2,
        0,
        10,
    )  # batch 2's ten only
    billed = {pi["metadata"]["subscription_id"] for pi in charges(e2e.sandbox)}
    assert billed == {str(s.public_id) for s in subs[10:]}
    assert JobRun.objects.filter(name="subscriptions.bill_batch", args=[failed.pk]).count() == 1
    assert not JobRun.objects.filter(name="subscriptions.bill_batch", args=[done.pk]).exists()


def test_batches_whose_messages_were_lost_are_swept_back(client, workers, plans):
    subs = make_due_subscriptions(plans[0], 20, declining_every=0)
    run = BillingRun.objects.create(
        billing_date=BILLING_DATE, status="running", batch_size=10, batches_total=2
    )
    run.batches.create(number=1, after_id=0, last_id=subs[9].pk)  # planned, but their messages never arrive
    run.batches.create(number=2, after_id=subs[9].pk, last_id=subs[-1].pk)
    workers.add_beat("beat")
    run = wait_for_run(workers, timeout=60)
    assert (run.batches_done, run.subscriptions_billed) == (2, 20)
    sweeps = JobExecution.objects.filter(key__startswith="recovery:").exclude(result={})
    requeued = [subject for sweep in sweeps for subject in sweep.result["requeued"]["billing"]]
    assert sorted(requeued) == sorted(f"billing_batch:{batch.pk}" for batch in run.batches.all())
