"""What a subscription does about its invoices' payments: registered as the "subscription" invoice owner
(`billing/owners.py`) in `subscriptions/apps.py`."""

from __future__ import annotations

import datetime

from billing.models import Invoice, PaymentAttempt
from subscriptions import renewals, signup
from subscriptions.models import BillingPeriod, Subscription

Status, Step = Subscription.Status, Subscription.Step


def wanting_payment(invoices: list[Invoice]) -> set[int]:
    """The sign-up charge while at that step, or the renewal of the period that is due."""
    periods = BillingPeriod.objects.select_related("subscription").filter(invoice__in=invoices)
    return {period.invoice_id for period in periods if _wants(period.subscription, period.start)}


def _wants(subscription: Subscription, start: datetime.date) -> bool:
    if subscription.status == Status.PENDING:
        return subscription.step == Step.CHARGE and start == subscription.current_period_start
    return subscription.status == Status.ACTIVE and start == subscription.current_period_end


def payments_settled(attempts: list[PaymentAttempt]) -> None:
    """Apply recorded payments to their subscriptions (runs in the transaction that records them)."""
    locked = Subscription.objects.select_for_update().filter(
        public_id__in=[attempt.invoice.owner_id for attempt in attempts]
    )
    subscriptions = {str(subscription.public_id): subscription for subscription in locked.order_by("pk")}
    renewed = []
    for attempt in attempts:
        subscription = subscriptions[attempt.invoice.owner_id]
        if subscription.status == Status.PENDING:
            signup.settle_signup_payment(subscription, attempt)
        elif subscription.status in (Status.ACTIVE, Status.PAST_DUE):
            renewed.append((subscription, attempt))
    renewals.settle_renewals(renewed)
