"""What the recovery sweep (jobkit.recovery) needs to know about subscriptions: sign-ups, compensations
and the emails that end them; billing runs and their batches. Which are stuck, and which job moves each on.

A refund is in flight only inside a compensation (`compensating` until it is done), so stuck refunds are
found as stuck compensations.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from datetime import datetime, timedelta

from jobkit.recovery import Stuck, in_pages
from notifications import services as notifications
from subscriptions import emails, jobs
from subscriptions.models import BillingBatch, BillingRun, Subscription

Status, Step = Subscription.Status, Subscription.Step
STEP_JOBS = {
    Step.CHARGE: jobs.charge_signup,
    Step.REGISTER_DELIVERY: jobs.register_delivery,
    Step.GRANT_ENTITLEMENT: jobs.grant_entitlement,
}
# A sign-up's last email is looked for this long after the sign-up ended; a sweep runs every minute,
# so only a shop down for longer than this would leave one unsent.
EMAIL_HORIZON = timedelta(days=7)


def stuck_signups(cutoff: datetime) -> Generator[Stuck, None, None]:
    """Sign-ups mid-workflow or compensating, and ended ones whose last email was never sent."""
    waiting = Subscription.objects.filter(
        status__in=(Status.PENDING, Status.COMPENSATING), updated_at__lt=cutoff
    )
    for subscription in in_pages(waiting):
        job = (
            jobs.compensate_signup
            if subscription.status == Status.COMPENSATING
            else STEP_JOBS[subscription.step]
        )
        yield Stuck(subscription.subject, [(job, (str(subscription.public_id),))])
    yield from _unsent_last_emails(cutoff)


def _unsent_last_emails(cutoff: datetime) -> Iterator[Stuck]:
    since = cutoff - EMAIL_HORIZON
    activated = Subscription.objects.filter(status=Status.ACTIVE, entitled_at__range=(since, cutoff))
    ended = Subscription.objects.filter(status=Status.FAILED, updated_at__range=(since, cutoff))
    for subscription in (*activated.order_by("id"), *ended.order_by("id")):
        if subscription.status == Status.ACTIVE:
            kind, job = emails.WELCOME, jobs.send_welcome
        elif subscription.periods.filter(invoice__attempts__refund__isnull=False).exists():
            kind, job = emails.REFUNDED, jobs.send_signup_refunded
        else:
            kind, job = emails.DECLINED, jobs.send_signup_declined
        if not notifications.was_sent(kind, subscription.subject):
            yield Stuck(subscription.subject, [(job, (str(subscription.public_id),))])


def stuck_billing(cutoff: datetime) -> Generator[Stuck, None, None]:
    """Runs still planning, pending batches of running runs, and running runs whose batches all settled."""
    for run in BillingRun.objects.exclude(status=BillingRun.Status.DONE).filter(started_at__lt=cutoff):
        pending = run.batches.filter(status=BillingBatch.Status.PENDING).only("pk")
        if run.status == BillingRun.Status.RUNNING and pending.exists():
            for batch in in_pages(pending):
                yield Stuck(jobs.bill_batch.subject_for([batch.pk]), [(jobs.bill_batch, (batch.pk,))])
        else:  # planning resumes where it stopped; a run with every batch settled is finished
            yield Stuck(run.subject, [(jobs.plan_billing_run, (run.pk,))])
