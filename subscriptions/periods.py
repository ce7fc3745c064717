"""A subscription's billed months: each has one invoice, issued at most once."""

from __future__ import annotations

import calendar
import datetime
from typing import NamedTuple

from django.db import IntegrityError, transaction

from billing.invoices import Bill, Line, issue_invoices
from subscriptions.models import BillingPeriod, BillingRun, Subscription


def add_month(day: datetime.date) -> datetime.date:
    """The same day next month, or the month's last day (31 Jan -> 28/29 Feb)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def issue_period_invoice(
    subscription: Subscription, start: datetime.date, billing_run: BillingRun | None = None
) -> BillingPeriod:
    """`issue_period_invoices` for one subscription."""
    return issue_period_invoices([(subscription, start)], billing_run).periods[subscription.pk]


class IssuedPeriods(NamedTuple):
    periods: dict[int, BillingPeriod]  # by subscription id
    new: set[int]  # the subscriptions whose period (and invoice) this call created, in its transaction


def issue_period_invoices(
    starts: list[tuple[Subscription, datetime.date]], billing_run: BillingRun | None = None
) -> IssuedPeriods:
    """For each subscription (by id), its billed period starting on the date given, with its invoice,
    created at most once; a few statements for a whole billing batch. The unique key on (subscription,
    start) decides between concurrent callers: the loser's invoices roll back with its periods, and it
    reads the winner's."""
    periods, new = _existing(starts), set()
    missing = [
        (subscription, start) for subscription, start in starts if (subscription.pk, start) not in periods
    ]
    if missing:
        try:
            with transaction.atomic():
                invoices = issue_invoices([_bill(subscription, start) for subscription, start in missing])
                created = BillingPeriod.objects.bulk_create(
                    BillingPeriod(
                        subscription=subscription, start=start, end=add_month(start), invoice=invoice,
                        billing_run=billing_run,
                    )
                    for (subscription, start), invoice in zip(missing, invoices, strict=True)
                )  # fmt: skip
            periods.update({(period.subscription_id, period.start): period for period in created})
            new = {period.subscription_id for period in created}
        except IntegrityError:
            periods = _existing(starts)  # a concurrent caller issued them first: theirs stand
            if any((subscription.pk, start) not in periods for subscription, start in missing):
                raise  # not a lost race: a row of ours broke a constraint
    by_subscription = {subscription.pk: periods[subscription.pk, start] for subscription, start in starts}
    return IssuedPeriods(by_subscription, new)


def _existing(
    starts: list[tuple[Subscription, datetime.date]],
) -> dict[tuple[int, datetime.date], BillingPeriod]:
    periods = BillingPeriod.objects.select_related("invoice").filter(
        subscription_id__in=[subscription.pk for subscription, _ in starts],
        start__in={start for _, start in starts},
    )
    return {(period.subscription_id, period.start): period for period in periods}


def _bill(subscription: Subscription, start: datetime.date) -> Bill:
    plan, end = subscription.plan, add_month(start)
    line = Line(f"{plan.name}, {start:%Y-%m-%d} to {end:%Y-%m-%d}", plan.price)
    return Bill(subscription.subject, subscription.email, plan.currency, [line])


def period_of(subscription: Subscription, start: datetime.date) -> BillingPeriod:
    return BillingPeriod.objects.select_related("invoice").get(subscription=subscription, start=start)
