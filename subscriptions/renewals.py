"""Batch billing of due subscriptions (pattern 4).

One BillingRun per billing date (unique), so a second beat, a staff click or a re-run of the command
joins the existing run instead of billing again. Planning walks the due subscriptions by keyset
pagination (id > last id, twenty pages at a time), so memory stays flat however many there are, and
records each page as a BillingBatch: an id range billed by one job. Planning that would outlast its job's
time limit goes on in a fresh run of the job. Each subscription's period has one invoice
(unique per subscription and period) charged through the idempotent charge service, so re-running a
batch or a whole run bills nobody twice. Counters are recomputed from the invoices, never incremented,
so they stay exact when a batch is retried: each batch counts its own id range, the run sums its batches.

A batch bills at the gateway's rate limit, not at one call at a time: it stages (one transaction commits
every member's invoice and payment attempt, whose key the call will carry), then calls (many in flight,
each through the breaker and the rate limiter), then records the answers that came back, at most once a
second.
"""

from __future__ import annotations

import datetime
import math
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from billing import payments
from billing.models import Invoice, PaymentAttempt
from jobkit.crash import crash_point
from jobkit.enqueue import enqueue_all_on_commit, enqueue_on_commit
from jobkit.errors import Deferred
from jobkit.outside import fit
from jobkit.rows import update_rows
from notifications import reminders
from subscriptions.models import BillingBatch, BillingPeriod, BillingRun, Subscription
from subscriptions.periods import issue_period_invoices

Status = Subscription.Status


class NotCancellable(Exception):
    """The subscription is not in a state that can be cancelled."""


def due_subscriptions(billing_date: datetime.date) -> QuerySet[Subscription]:
    return Subscription.objects.filter(
        status=Subscription.Status.ACTIVE, current_period_end__lte=billing_date
    )


def start_run(billing_date: datetime.date) -> tuple[BillingRun, bool]:
    """The run for this date, created and planned once; later calls return the same run."""
    from subscriptions import jobs

    with transaction.atomic():
        run, created = BillingRun.objects.get_or_create(
            billing_date=billing_date, defaults={"batch_size": settings.BILLING_BATCH_SIZE}
        )
        if created:
            enqueue_on_commit(jobs.plan_billing_run, run.pk)
    return run, created


# Batches planned per transaction: one commit (and one enqueue) per 20 batches, 2,000 subscriptions, not
# one per batch. A commit per batch took 95 ms each on SQLite while the first batches billed beside it, and
# the planning of 100,000 subscriptions ran into the soft time limit (`make bench`, billing).
PLANNED_PER_TRANSACTION = 20


def plan_run(run_id: int) -> None:
    """Cut the due subscriptions into id-range batches, walking them in id order (keyset: id > the last
    one planned); resumable. Planning that would run into the soft time limit stops after half of it
    and goes on in a fresh run of its job (`Deferred`, no retry spent), however many are due."""
    from subscriptions import jobs

    run = BillingRun.objects.get(pk=run_id)
    if run.status != BillingRun.Status.PLANNING:
        refresh_counters(run.pk)  # a run whose batches all settled but whose last count was lost ends
        return
    stop_at = time.monotonic() + settings.CELERY_TASK_SOFT_TIME_LIMIT / 2
    last_id = run.batches.aggregate(last=Max("last_id"))["last"] or 0  # resume after a crash
    number = planned_before = run.batches.count()
    due = due_subscriptions(run.billing_date).order_by("id").values_list("id", flat=True)
    while ids := list(due.filter(id__gt=last_id)[: run.batch_size * PLANNED_PER_TRANSACTION]):
        if number > planned_before and time.monotonic() > stop_at:  # at least a transaction a run
            raise Deferred(f"planned {number} batches; planning goes on in the job's next run", 0)
        batches = []
        while ids and len(batches) < PLANNED_PER_TRANSACTION:
            size = _page_size(run.batch_size, number)
            page, ids = ids[:size], ids[size:]
            number += 1
            batches.append(BillingBatch(run=run, number=number, after_id=last_id, last_id=page[-1]))
            last_id = page[-1]
        with transaction.atomic():
            batches = BillingBatch.objects.bulk_create(batches)
            BillingRun.objects.filter(pk=run.pk).update(batches_total=number)
            enqueue_all_on_commit([(jobs.bill_batch, (batch.pk,)) for batch in batches])
    BillingRun.objects.filter(pk=run.pk).update(status=BillingRun.Status.RUNNING, batches_total=number)
    refresh_counters(run.pk)


def _page_size(batch_size: int, planned: int) -> int:
    """The first batch is half a batch, the rest whole. Batches of one size, started together, end
    together: every worker process then stages its next batch at the same moment, and no call goes out
    while they do (at 100/s, a dip to a fifth of the rate at every batch). Half a batch first puts one
    process's staging in the middle of the other's calls, which take up its share of the rate limit
    (`make bench`, limit: 89-93% of 100/s against 81-88% with whole batches only)."""
    return max(1, batch_size // 2) if planned == 0 else batch_size


def batch_count(due: int, batch_size: int) -> int:
    """How many batches `plan_run` cuts `due` subscriptions into."""
    first = _page_size(batch_size, 0)
    return min(due, 1) + math.ceil(max(0, due - first) / batch_size)


def bill_batch(batch_id: int) -> None:
    """Bill every subscription of one batch: stage, call, record. Re-running it skips what is billed.

    Pattern 2 in bulk: every call's attempt is committed before the call, so a crash anywhere re-runs the
    batch, which stages the same invoices and pending attempts, re-sends the same keys and records the
    gateway's saved answers. A call that fails, or must wait (an open breaker, the rate limit), stops the
    batch from starting more; what came back is recorded, and the job retries or is deferred as a
    single charge would be, leaving the rest pending for its next run.
    """
    batch = BillingBatch.objects.select_related("run").get(pk=batch_id)
    if batch.status == BillingBatch.Status.DONE:
        return
    attempts = stage_batch(batch)
    crash_point("after_billing_batch_staged")  # test hook: invoices and attempts committed, nothing called
    for answered in payments.send_attempts(attempts):
        crash_point("after_billing_batch_called")  # test hook: the gateway answered, nothing recorded
        # settle_renewal moves each period on, or makes the subscription past due with reminders
        payments.record_outcomes(answered)
    count_batch(batch)
    BillingBatch.objects.filter(pk=batch.pk).update(status=BillingBatch.Status.DONE)
    refresh_counters(batch.run_id)


@transaction.atomic
def stage_batch(batch: BillingBatch) -> list[PaymentAttempt]:
    """Every due member's period invoice and payment attempt, committed together before any call; returns
    the attempts still to send (pending: opened now, or left by an earlier run). A few statements for
    the whole batch (BILLING_BATCH_SIZE members), not a few per member: staging is time in which this
    process makes no call."""
    run = batch.run
    members = due_subscriptions(run.billing_date).filter(id__gt=batch.after_id, id__lte=batch.last_id)
    members = list(members.select_related("plan").order_by("id"))
    # A subscription cancelled at period end ends instead of renewing.
    ending = [subscription.pk for subscription in members if subscription.cancel_at_period_end]
    Subscription.objects.filter(pk__in=ending).update(
        status=Subscription.Status.CANCELLED, status_reason="Cancelled at the end of the period."
    )
    renewing = {
        subscription.pk: subscription for subscription in members if not subscription.cancel_at_period_end
    }
    issued = issue_period_invoices(
        [(subscription, subscription.current_period_end) for subscription in renewing.values()],
        billing_run=run,
    )
    # Invoices issued now get their attempts at once; those an earlier run of the batch issued go
    # through open_attempts, which finds what that run left (a pending attempt, a recorded outcome).
    new = {issued.periods[pk].invoice: renewing[pk].payment_method for pk in issued.new}
    earlier = {
        period.invoice_id: renewing[pk].payment_method
        for pk, period in issued.periods.items()
        if pk not in issued.new and period.invoice.status == Invoice.Status.OPEN
    }
    attempts = [
        *payments.open_attempts_of_new_invoices(new).values(),
        *payments.open_attempts(earlier).values(),
    ]
    return sorted(
        (a for a in attempts if a.status == PaymentAttempt.Status.PENDING), key=lambda a: a.invoice_id
    )


def mark_batch_failed(batch_id: int) -> None:
    """A batch that exhausted its retries: counted as failed; staff can retry it alone."""
    batch = BillingBatch.objects.get(pk=batch_id)
    count_batch(batch)  # what it did bill before it died still counts
    BillingBatch.objects.filter(pk=batch.pk).exclude(status=BillingBatch.Status.DONE).update(
        status=BillingBatch.Status.FAILED
    )
    refresh_counters(batch.run_id)


def retry_failed_batches(run_id: int) -> int:
    from subscriptions import jobs

    with transaction.atomic():
        failed = list(
            BillingBatch.objects.select_for_update().filter(run_id=run_id, status=BillingBatch.Status.FAILED)
        )
        for batch in failed:
            batch.status = BillingBatch.Status.PENDING
            batch.save(update_fields=["status"])
            enqueue_on_commit(jobs.bill_batch, batch.pk)
        BillingRun.objects.filter(pk=run_id).update(status=BillingRun.Status.RUNNING, finished_at=None)
    refresh_counters(run_id)
    return len(failed)


def count_batch(batch: BillingBatch) -> None:
    """The batch's counters from its own invoices: exact however often it ran, and O(batch size)."""
    periods = BillingPeriod.objects.filter(
        billing_run_id=batch.run_id, subscription_id__gt=batch.after_id, subscription_id__lte=batch.last_id
    )
    paid = Q(invoice__status=Invoice.Status.PAID)
    declined = PaymentAttempt.objects.filter(invoice=OuterRef("invoice"), status=PaymentAttempt.Status.FAILED)
    counts = periods.aggregate(  # one period per invoice: counting periods counts invoices
        billed=Count("pk", filter=paid),
        amount=Sum("invoice__amount", filter=paid),
        failed=Count("pk", filter=Q(invoice__status=Invoice.Status.OPEN) & Q(Exists(declined))),
    )
    BillingBatch.objects.filter(pk=batch.pk).update(
        billed=counts["billed"], amount=counts["amount"] or 0, failed=counts["failed"]
    )


def refresh_counters(run_id: int) -> None:
    """The run's progress: a sum over its batches (one row each), so it stays cheap at any size. Summed
    under the run's lock: batches ending at once each write their sum in turn, the last one with both
    (summed before the lock, an earlier sum could be written last and count a done batch as not done)."""
    with transaction.atomic():
        run = BillingRun.objects.select_for_update().get(pk=run_id)
        totals = BillingBatch.objects.filter(run_id=run_id).aggregate(
            batches_done=Count("id", filter=Q(status=BillingBatch.Status.DONE)),
            batches_failed=Count("id", filter=Q(status=BillingBatch.Status.FAILED)),
            billed=Sum("billed"),
            failed_subscriptions=Sum("failed"),
            amount=Sum("amount"),
        )
        run.subscriptions_billed, run.amount_billed = totals["billed"] or 0, totals["amount"] or 0
        run.subscriptions_failed = totals["failed_subscriptions"] or 0
        run.batches_done, run.batches_failed = totals["batches_done"], totals["batches_failed"]
        settled = run.batches_done + run.batches_failed
        if run.status == BillingRun.Status.RUNNING and settled == run.batches_total:
            run.status, run.finished_at = BillingRun.Status.DONE, timezone.now()
        run.save()


def settle_renewals(renewed: list[tuple[BillingPeriod, PaymentAttempt]]) -> None:
    """Recorded renewal charges (each with its period, whose subscription is locked): move the period on,
    or go past due with reminders. One write per kind for a lot of answers, as a billing batch records
    them."""
    changed: dict[int, Subscription] = {}
    paid: list[str] = []
    for period, attempt in renewed:
        subscription = period.subscription
        if period.start != subscription.current_period_end:
            continue  # an older period's payment; the subscription has moved on
        if attempt.status == PaymentAttempt.Status.SUCCEEDED:
            subscription.current_period_start = period.start
            subscription.current_period_end = period.end
            subscription.status, subscription.status_reason = Status.ACTIVE, ""
            paid.append(subscription.subject)
        else:
            subscription.status = Status.PAST_DUE
            subscription.status_reason = fit(
                Subscription, "status_reason", attempt.failure_message or attempt.failure_code
            )
            reminders.schedule(subscription.subject)
        subscription.updated_at = timezone.now()
        changed[subscription.pk] = subscription
    reminders.cancel(*paid)
    update_rows(
        list(changed.values()),
        ["current_period_start", "current_period_end", "status", "status_reason", "updated_at"],
    )


@transaction.atomic
def cancel_at_period_end(subscription_id: str) -> Subscription:
    """The subscription ends with its current period: the next billing run cancels instead of billing."""
    subscription = Subscription.objects.select_for_update().get(public_id=subscription_id)
    if subscription.status not in (Status.ACTIVE, Status.PAST_DUE):
        raise NotCancellable(
            f"Only an active subscription can be cancelled; this one is {subscription.status}."
        )
    subscription.cancel_at_period_end = True
    subscription.save(update_fields=["cancel_at_period_end", "updated_at"])
    return subscription
