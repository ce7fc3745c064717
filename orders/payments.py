"""What an order does about its invoice's payments: registered as the "order" invoice owner
(`billing/owners.py`) in `orders/apps.py`."""

from __future__ import annotations

from billing.models import Invoice, PaymentAttempt
from jobkit.outside import fit
from notifications import reminders
from orders import pipeline
from orders.models import Order


def wanting_payment(invoices: list[Invoice]) -> set[int]:
    """An order wants its invoice paid while it is processing."""
    invoice_of = {invoice.owner_id: invoice.pk for invoice in invoices}
    processing = Order.objects.filter(public_id__in=invoice_of, status=Order.Status.PROCESSING)
    return {invoice_of[str(public_id)] for public_id in processing.values_list("public_id", flat=True)}


def payments_settled(attempts: list[PaymentAttempt]) -> None:
    for attempt in attempts:  # one order has one invoice: the list is one charge's attempt
        _settle(attempt)


def _settle(attempt: PaymentAttempt) -> None:
    """Paid: fan out the follow-ups. Declined: `payment_failed`, with reminders planned.

    One conditional UPDATE moves the order on from `processing`, and from nothing else: an order that
    moved on meanwhile (cancelled, or settled by a concurrent run) is left alone, and nothing follows."""
    order_id = attempt.invoice.owner_id
    if attempt.status == PaymentAttempt.Status.SUCCEEDED:
        if Order.move(order_id, Order.Status.PROCESSING, Order.Status.PAID, status_reason=""):
            pipeline.fan_out(order_id)
        return
    reason = fit(Order, "status_reason", attempt.failure_message or attempt.failure_code)
    if Order.move(order_id, Order.Status.PROCESSING, Order.Status.PAYMENT_FAILED, status_reason=reason):
        reminders.schedule(Order.subject_of(order_id))
