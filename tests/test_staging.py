"""stage_batch: a batch's invoices and attempts, opened at once when it issues them, found again when a
re-run of the batch meets them."""

from __future__ import annotations

import datetime

import pytest
from django.db import transaction

from billing import payments
from billing.models import Invoice, PaymentAttempt
from shop import factories
from subscriptions import renewals
from subscriptions.models import BillingBatch, BillingRun

DUE = datetime.date(2031, 5, 1)


def _batch(plans: list, size: int) -> BillingBatch:
    plan = next(p for p in plans if p.code == "coffee-monthly")
    subscriptions = factories.due_subscriptions(plan, size, DUE, tag="staging")
    run = BillingRun.objects.create(billing_date=DUE, batch_size=size, status=BillingRun.Status.RUNNING)
    ids = sorted(subscription.pk for subscription in subscriptions)
    return BillingBatch.objects.create(run=run, number=1, after_id=ids[0] - 1, last_id=ids[-1])


@pytest.mark.django_db
def test_a_rerun_of_a_staged_batch_finds_its_pending_attempts_and_opens_none(plans: list):
    batch = _batch(plans, 4)

    first = renewals.stage_batch(batch)
    again = renewals.stage_batch(batch)

    assert len(first) == 4 and {attempt.status for attempt in first} == {PaymentAttempt.Status.PENDING}
    # The same attempts, so a re-sent call carries the same Idempotency-Key.
    assert [(a.pk, a.idempotency_key) for a in again] == [(a.pk, a.idempotency_key) for a in first]
    assert PaymentAttempt.objects.count() == 4 and Invoice.objects.count() == 4
    assert all(attempt.invoice.number for attempt in again)  # what the call's metadata reads


@pytest.mark.django_db(transaction=True)
def test_attempts_of_new_invoices_are_refused_outside_the_transaction_that_issued_them(plans: list):
    with transaction.atomic():
        invoice = renewals.stage_batch(_batch(plans, 1))[0].invoice
    PaymentAttempt.objects.all().delete()

    with pytest.raises(RuntimeError, match="transaction that issued"):
        payments.open_attempts_of_new_invoices({invoice: factories.GOOD_CARD})
    assert not PaymentAttempt.objects.exists()
