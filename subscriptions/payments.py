"""What a subscription does about its invoices' payments: registered as the "subscription" invoice owner
(`billing/owners.py`) in `subscriptions/apps.py`."""

from __future__ import annotations

import datetime

from billing.models import Invoice, PaymentAttempt
from subscriptions import renewals, signup
from subscriptions.models import BillingPeriod, Subscription

Status, Step = Subscription.Status, Subscription.Step


def wanting_payment(invoices: list[Invoice]) -> set[int]:
    """The sign-up charge while at that step, or the renewal of the period that is due. Read as plain
    values: a billing batch asks about all of its invoices at once, inside the transaction that stages it."""
    periods = BillingPeriod.objects.filter(invoice__in=invoices).values_list(
        "invoice_id",
        "start",
        "subscription__status",
        "subscription__step",
        "subscription__current_period_start",
        "subscription__current_period_end",
    )
    return {invoice_id for invoice_id, *period in periods if _wants(*period)}


def _wants(
    start: datetime.date, status: str, step: str, period_start: datetime.date, period_end: datetime.date
) -> bool:
    """Does a subscription in this state want the payment of its period that starts on `start`?"""
    if status == Status.PENDING:
        return step == Step.CHARGE and start == period_start
    return status == Status.ACTIVE and start == period_end


def payments_settled(attempts: list[PaymentAttempt]) -> None:
    """Apply recorded payments to their subscriptions (runs in the transaction that records them). Every
    invoice of a subscription is a period's: one read gets each paid period with its subscription, locked
    (in id order, as every writer of subscriptions locks them)."""
    periods = (
        BillingPeriod.objects.select_related("subscription")
        .select_for_update(of=("subscription",))
        .filter(invoice__in=[attempt.invoice_id for attempt in attempts])
        .order_by("subscription_id")
    )
    subscriptions: dict[int, Subscription] = {}  # one instance a subscription, however many of its periods
    period_of = {}
    for period in periods:
        period.subscription = subscriptions.setdefault(period.subscription_id, period.subscription)
        period_of[period.invoice_id] = period
    renewed = []
    for attempt in attempts:
        period = period_of[attempt.invoice_id]
        if period.subscription.status == Status.PENDING:
            signup.settle_signup_payment(period.subscription, attempt)
        elif period.subscription.status in (Status.ACTIVE, Status.PAST_DUE):
            renewed.append((period, attempt))
    renewals.settle_renewals(renewed)
