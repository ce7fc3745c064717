"""shop.factories.paid_current_periods: the signup history the billing benchmarks seed before a run."""

from __future__ import annotations

import datetime

import pytest

from billing.models import Invoice, PaymentAttempt
from shop import factories
from subscriptions import renewals
from subscriptions.models import BillingPeriod

pytestmark = pytest.mark.django_db

DUE = datetime.date(2031, 3, 1)


def test_each_subscription_gets_its_current_period_paid_and_stays_due(plans: list, monkeypatch):
    monkeypatch.setattr(factories, "SEED_BATCH", 3)  # seven subscriptions: lots of 3, 3 and 1
    plan = next(p for p in plans if p.code == "coffee-monthly")
    subscriptions = factories.due_subscriptions(plan, 7, DUE, tag="history")

    factories.paid_current_periods(subscriptions)

    for subscription in subscriptions:
        [period] = BillingPeriod.objects.filter(subscription=subscription)
        assert period.start == subscription.current_period_start
        assert period.invoice.status == Invoice.Status.PAID
        [attempt] = period.invoice.attempts.all()
        assert attempt.status == PaymentAttempt.Status.SUCCEEDED
        assert (attempt.amount, attempt.payment_method) == (plan.price, subscription.payment_method)
    # The history is the period before the renewal: every subscription is still due on DUE.
    assert set(renewals.due_subscriptions(DUE)) == set(subscriptions)
