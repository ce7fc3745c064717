"""The compensated sign-up workflow (pattern 7).

Local records first (subscription `pending` and its first invoice, under a unique request key), then the
idempotent charge, then activation steps: register the recurring delivery with the carrier, grant the
entitlement, welcome email. Each step is its own job and records its progress in `Subscription.step`, so a
retry resumes the failed step only. A step after the charge that fails for good (its job dies; the
dead-job handler is registered in `subscriptions/apps.py`) starts compensation: an idempotent refund, the
carrier registration cancelled, status `failed`, the customer told once.
"""

from __future__ import annotations

from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import payments
from billing.models import PaymentAttempt
from jobkit import clock
from jobkit.crash import fail_point
from jobkit.enqueue import enqueue_on_commit
from jobkit.errors import TransientError
from jobkit.outside import fit
from notifications import services as notifications
from shipping import carrier
from subscriptions import emails
from subscriptions.models import Plan, Subscription
from subscriptions.periods import add_month, issue_period_invoice, period_of

Status, Step = Subscription.Status, Subscription.Step


@transaction.atomic
def sign_up(*, email: str, plan: Plan, payment_method: str, request_key: str) -> Subscription:
    """Local records first: a pending subscription and its first invoice; the charge starts on commit."""
    from subscriptions import jobs

    today = clock.today()
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
    period = period_of(subscription, subscription.current_period_start)
    payments.charge_invoice(period.invoice_id, subscription.payment_method)


def settle_signup_payment(subscription: Subscription, attempt: PaymentAttempt) -> None:
    """The sign-up's charge was recorded (in this transaction): on to the next step, or `failed`."""
    from subscriptions import jobs

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
    first = period_of(subscription, subscription.current_period_start).invoice
    payment = first.attempts.filter(status=PaymentAttempt.Status.SUCCEEDED).first()
    if payment is not None:
        payments.refund_payment(payment.pk)
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
