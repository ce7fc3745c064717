"""A subscription's billed months: each has one invoice, issued at most once."""

from __future__ import annotations

import calendar
import datetime

from django.db import IntegrityError, transaction

from billing.invoices import Line, issue_invoice
from subscriptions.models import BillingPeriod, BillingRun, Subscription


def add_month(day: datetime.date) -> datetime.date:
    """The same day next month, or the month's last day (31 Jan -> 28/29 Feb)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def issue_period_invoice(
    subscription: Subscription, start: datetime.date, billing_run: BillingRun | None = None
) -> BillingPeriod:
    """The billed period starting on `start`, with its invoice, created at most once: the unique key on
    (subscription, start) decides between concurrent callers; the loser's invoice rolls back with it."""
    existing = BillingPeriod.objects.select_related("invoice").filter(subscription=subscription, start=start)
    if period := existing.first():
        return period
    end = add_month(start)
    plan = subscription.plan
    try:
        with transaction.atomic():
            invoice = issue_invoice(
                owner=subscription.subject,
                email=subscription.email,
                currency=plan.currency,
                lines=[Line(f"{plan.name}, {start:%Y-%m-%d} to {end:%Y-%m-%d}", plan.price)],
            )
            return BillingPeriod.objects.create(
                subscription=subscription, start=start, end=end, invoice=invoice, billing_run=billing_run
            )
    except IntegrityError:
        return period_of(subscription, start)


def period_of(subscription: Subscription, start: datetime.date) -> BillingPeriod:
    return BillingPeriod.objects.select_related("invoice").get(subscription=subscription, start=start)
