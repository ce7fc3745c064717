"""What a subscription does about its invoices' payments: registered as the "subscription" invoice owner
(`billing/owners.py`) in `subscriptions/apps.py`."""

from __future__ import annotations

from billing.models import Invoice, PaymentAttempt
from subscriptions import renewals, signup
from subscriptions.models import BillingPeriod, Subscription

Status, Step = Subscription.Status, Subscription.Step


def wants_payment(owner_id: str, invoice: Invoice) -> bool:
    """The sign-up charge while at that step, or the renewal of the period that is due."""
    subscription = Subscription.objects.get(public_id=owner_id)
    start = BillingPeriod.objects.get(invoice=invoice).start
    if subscription.status == Status.PENDING:
        return subscription.step == Step.CHARGE and start == subscription.current_period_start
    return subscription.status == Status.ACTIVE and start == subscription.current_period_end


def payment_settled(owner_id: str, attempt: PaymentAttempt) -> None:
    """Apply a recorded payment to its subscription (runs in the transaction that records it)."""
    subscription = Subscription.objects.select_for_update().get(public_id=owner_id)
    if subscription.status == Status.PENDING:
        signup.settle_signup_payment(subscription, attempt)
    elif subscription.status in (Status.ACTIVE, Status.PAST_DUE):
        renewals.settle_renewal(subscription, attempt)
