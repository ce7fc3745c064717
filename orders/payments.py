"""What an order does about its invoice's payments: registered as the "order" invoice owner
(`billing/owners.py`) in `orders/apps.py`."""

from __future__ import annotations

from billing.models import Invoice, PaymentAttempt
from jobkit.outside import fit
from notifications import reminders
from orders import pipeline
from orders.models import Order


def wants_payment(owner_id: str, invoice: Invoice) -> bool:
    return Order.objects.filter(public_id=owner_id, status=Order.Status.PROCESSING).exists()


def payment_settled(owner_id: str, attempt: PaymentAttempt) -> None:
    """Paid: fan out the follow-ups. Declined: `payment_failed`, with reminders planned."""
    order = Order.objects.select_for_update().get(public_id=owner_id)
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
