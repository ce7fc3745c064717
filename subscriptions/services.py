"""Subscription operations: the compensated sign-up workflow (pattern 7) and renewals.

Sign-up is local records first (subscription `pending` and its first invoice, under a unique request
key), then the idempotent charge, then activation steps: register the recurring delivery with the
carrier, grant the entitlement, welcome email. Each step is its own job and records its progress in
`Subscription.step`, so a retry resumes the failed step only. A step after the charge that fails for
good triggers compensation: an idempotent refund, the carrier registration cancelled, status `failed`,
the customer told once.
"""

from __future__ import annotations

import calendar
import datetime
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import services as billing
from billing.models import Invoice, PaymentAttempt, Plan
from jobkit.crash import fail_point
from jobkit.enqueue import enqueue_on_commit
from jobkit.errors import TransientError
from jobkit.outside import fit
from notifications import services as notifications
from notifications.models import Reminder
from orders import carrier
from orders.services import NotAllowed
from subscriptions import emails
from subscriptions.models import BillingRun, Subscription

Status, Step = Subscription.Status, Subscription.Step


def add_month(day: datetime.date) -> datetime.date:
    """The same day next month, or the month's last day (31 Jan -> 28/29 Feb)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def issue_period_invoice(
    subscription: Subscription, period_start: datetime.date, billing_run: BillingRun | None = None
) -> tuple[Invoice, bool]:
    """The invoice for one period, created at most once (unique per subscription and period)."""
    invoice, created = Invoice.objects.get_or_create(
        subscription=subscription,
        period_start=period_start,
        defaults={
            "period_end": add_month(period_start),
            "email": subscription.email,
            "amount": subscription.plan.price,
            "currency": subscription.plan.currency,
            "billing_run": billing_run,
        },
    )
    if created:
        billing.number_invoice(invoice)
    return invoice, created


@transaction.atomic
def sign_up(*, email: str, plan: Plan, payment_method: str, request_key: str) -> Subscription:
    """Local records first: a pending subscription and its first invoice; the charge starts on commit."""
    from subscriptions import jobs

    today = timezone.localdate()
    subscription = Subscription.objects.create(
        request_key=request_key,
        email=email,
        plan=plan,
        payment_method=payment_method,
        current_period_start=today,
        current_period_end=add_month(today),
    )
    issue_period_invoice(subscription, today)
    enqueue_on_commit(jobs.charge_signup, str(subscription.public_id))
    return subscription


def sign_up_once(*, email: str, plan: Plan, payment_method: str, request_key: str) -> Subscription:
    """sign_up, or the subscription an earlier request with this key made (a double-submitted form).

    The unique request key decides, not a look-up first: two concurrent submits both pass a look-up.
    """
    try:
        with transaction.atomic():  # a savepoint if nested: the duplicate rolls back only this attempt
            return sign_up(email=email, plan=plan, payment_method=payment_method, request_key=request_key)
    except IntegrityError:
        existing = Subscription.objects.filter(request_key=request_key).first()
        if existing is None:
            raise  # another constraint failed: not a double submit
        return existing


def charge_signup(subscription_id: str) -> None:
    """Step 1: the first charge, through the idempotent charge service (pattern 2)."""
    subscription = Subscription.objects.get(public_id=subscription_id)
    if subscription.status != Status.PENDING or subscription.step != Step.CHARGE:
        return
    invoice = subscription.invoices.get(period_start=subscription.current_period_start)
    billing.charge_invoice(invoice.pk, subscription.payment_method)


def subscription_wants_payment(subscription_pk: int, invoice: Invoice) -> bool:
    """The sign-up charge while at that step, or the renewal of the period that is due."""
    subscription = Subscription.objects.get(pk=subscription_pk)
    if subscription.status == Status.PENDING:
        return subscription.step == Step.CHARGE and invoice.period_start == subscription.current_period_start
    return subscription.status == Status.ACTIVE and invoice.period_start == subscription.current_period_end


def settle_subscription_payment(subscription_pk: int, attempt: PaymentAttempt) -> None:
    """Apply a recorded payment to its subscription (runs in the transaction that records it)."""
    from subscriptions import jobs

    subscription = Subscription.objects.select_for_update().get(pk=subscription_pk)
    subscription_id = str(subscription.public_id)
    succeeded = attempt.status == PaymentAttempt.Status.SUCCEEDED
    if subscription.status == Status.PENDING and subscription.step == Step.CHARGE:
        if succeeded:
            subscription.step = Step.REGISTER_DELIVERY
            enqueue_on_commit(jobs.register_delivery, subscription_id)
        else:
            subscription.status = Status.FAILED
            subscription.status_reason = fit(
                Subscription, "status_reason", attempt.failure_message or attempt.failure_code
            )
            enqueue_on_commit(jobs.send_signup_declined, subscription_id)
        subscription.save(update_fields=["step", "status", "status_reason", "updated_at"])
    elif subscription.status in (Status.ACTIVE, Status.PAST_DUE):
        settle_renewal(subscription, attempt)


def register_delivery(subscription_id: str) -> None:
    """Step 2: the recurring delivery at the carrier (idempotent by its key; a 422 is permanent).

    A duplicate of this job can be out at the carrier while compensation runs. The registration it gets
    is recorded under the row lock whatever the status, so compensation sees it (and cancels it); if
    compensation has already ended, this job cancels it itself.
    """
    from subscriptions import jobs

    subscription = Subscription.objects.select_related("plan").get(public_id=subscription_id)
    if subscription.status == Status.FAILED and subscription.carrier_registration:
        carrier.cancel_registration(subscription.carrier_registration)  # idempotent; see above
        return
    if subscription.status != Status.PENDING or subscription.step != Step.REGISTER_DELIVERY:
        return
    registration = carrier.register_delivery(
        subscription_id, f"c/o {subscription.email}", subscription.plan.code
    )
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        locked.carrier_registration = locked.carrier_registration or registration["id"]
        if locked.status == Status.PENDING and locked.step == Step.REGISTER_DELIVERY:
            locked.step = Step.GRANT_ENTITLEMENT
            enqueue_on_commit(jobs.grant_entitlement, subscription_id)
        locked.save(update_fields=["carrier_registration", "step", "updated_at"])
    if locked.status == Status.FAILED:  # compensation ended before this registration was recorded
        carrier.cancel_registration(registration["id"])


@transaction.atomic
def grant_entitlement(subscription_id: str) -> None:
    """Step 3: the customer's access, then the welcome email once this commits."""
    from subscriptions import jobs

    subscription = Subscription.objects.select_for_update().get(public_id=subscription_id)
    if subscription.status != Status.PENDING or subscription.step != Step.GRANT_ENTITLEMENT:
        return
    fail_point("grant_entitlement")  # test hook: the entitlement fails for good, after the registration
    subscription.entitled_at = timezone.now()
    subscription.step, subscription.status = Step.DONE, Status.ACTIVE
    subscription.save(update_fields=["entitled_at", "step", "status", "updated_at"])
    enqueue_on_commit(jobs.send_welcome, subscription_id)


def begin_compensation(subscription_id: str) -> None:
    """A step after the charge failed for good: undo what was done, from the charge on."""
    from subscriptions import jobs

    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(public_id=subscription_id)
        if subscription.status != Status.PENDING or subscription.step == Step.CHARGE:
            return  # nothing charged yet (or already settled): nothing to compensate
        subscription.status = Status.COMPENSATING
        subscription.save(update_fields=["status", "updated_at"])
        enqueue_on_commit(jobs.compensate_signup, subscription_id)


def compensate_signup(subscription_id: str) -> None:
    """Refund the first payment (idempotent), cancel the delivery, mark `failed`, tell the customer once."""
    from subscriptions import jobs

    subscription = Subscription.objects.get(public_id=subscription_id)
    if subscription.status != Status.COMPENSATING:
        return
    first = subscription.invoices.get(period_start=subscription.current_period_start)
    payment = first.attempts.filter(status=PaymentAttempt.Status.SUCCEEDED).first()
    if payment is not None:
        billing.refund_payment(payment.pk)
    cancelled = subscription.carrier_registration
    if cancelled:
        carrier.cancel_registration(cancelled)
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if locked.status != Status.COMPENSATING:
            return
        if locked.carrier_registration != cancelled:  # a late register_delivery recorded one meanwhile
            raise TransientError("a delivery registration appeared during compensation", outage=False)
        locked.status = Status.FAILED
        locked.status_reason = "Activation failed after payment; the payment was refunded."
        locked.save(update_fields=["status", "status_reason", "updated_at"])
        enqueue_on_commit(jobs.send_signup_refunded, subscription_id)


def send_email(kind: str, subscription_id: str) -> None:
    subscription = Subscription.objects.select_related("plan").get(public_id=subscription_id)
    build = partial(emails.BUILDERS[kind], subscription)
    notifications.send_once(kind, subscription.subject, subscription.email, build)


# --- renewals ---------------------------------------------------------------------------------------------
def settle_renewal(subscription: Subscription, attempt: PaymentAttempt) -> None:
    """A renewal charge was recorded: move the period on, or go past due with reminders."""
    from notifications import reminders

    invoice = attempt.invoice
    if invoice.period_start != subscription.current_period_end:
        return  # an older period's payment; the subscription has moved on
    if attempt.status == PaymentAttempt.Status.SUCCEEDED:
        subscription.current_period_start = invoice.period_start
        subscription.current_period_end = invoice.period_end
        subscription.status, subscription.status_reason = Status.ACTIVE, ""
        reminders.cancel(subscription.subject)
    else:
        subscription.status = Status.PAST_DUE
        subscription.status_reason = fit(
            Subscription, "status_reason", attempt.failure_message or attempt.failure_code
        )
        reminders.schedule(subscription.subject)
    subscription.save()


@transaction.atomic
def cancel_at_period_end(subscription_id: str) -> Subscription:
    subscription = Subscription.objects.select_for_update().get(public_id=subscription_id)
    if subscription.status not in (Status.ACTIVE, Status.PAST_DUE):
        raise NotAllowed(f"Only an active subscription can be cancelled; this one is {subscription.status}.")
    subscription.cancel_at_period_end = True
    subscription.save(update_fields=["cancel_at_period_end", "updated_at"])
    return subscription


def remind_past_due(subscription_id: str, reminder: Reminder) -> bool:
    """A due reminder for a past-due subscription; the final one cancels the subscription."""
    subscription = (
        Subscription.objects.select_for_update().select_related("plan").get(public_id=subscription_id)
    )
    if subscription.status != Status.PAST_DUE:
        return False
    notifications.send_once(
        f"{emails.PAYMENT_REMINDER}_{reminder.sequence}",
        subscription.subject,
        subscription.email,
        partial(emails.payment_reminder, subscription, reminder),
    )
    if reminder.final:
        subscription.status, subscription.status_reason = (
            Status.CANCELLED,
            "Not paid after the final reminder.",
        )
        subscription.save(update_fields=["status", "status_reason", "updated_at"])
    return True
