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
    """Paid: fan out the follow-ups. Declined: `payment_failed`, with reminders planned."""
    order = Order.objects.select_for_update().get(public_id=attempt.invoice.owner_id)
    if order.status != Order.Status.PROCESSING:
        return
    if attempt.status == PaymentAttempt.Status.SUCCEEDED:
        order.status, order.status_reason = Order.Status.PAID, ""
        pipeline.fan_out(order)
    else:
        order.status = Order.Status.PAYMENT_FAILED
        order.status_reason = fit(Order, "status_reason", attempt.failure_message or attempt.failure_code)
        reminders.schedule(order.subject)
    order.save(update_fields=["status", "status_reason", "updated_at"])
