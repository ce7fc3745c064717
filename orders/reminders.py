"""The order's payment reminders (pattern 5 is in `notifications/reminders.py`): registered as the
"order" reminder handler in `orders/apps.py`."""

from __future__ import annotations

from functools import partial

from billing.models import Invoice
from notifications.models import Reminder
from notifications.services import MessageBuilder
from orders import emails
from orders.checkout import release_stock
from orders.models import Order

email_kind = emails.PAYMENT_REMINDER


def reminder_for(order_id: str, reminder: Reminder) -> tuple[str, MessageBuilder] | None:
    order = Order.objects.select_for_update().get(public_id=order_id)
    if order.status != Order.Status.PAYMENT_FAILED:
        return None  # paid again, or cancelled, since the reminder was planned
    return order.email, partial(emails.payment_reminder, order, reminder)


def give_up(order_id: str) -> bool:
    """Unpaid after the final reminder: the order expires, its stock returns, its invoice is void."""
    order = Order.objects.select_for_update().get(public_id=order_id)
    if order.status != Order.Status.PAYMENT_FAILED:
        return False  # paid again while the final reminder went out
    release_stock(order)
    order.status, order.status_reason = Order.Status.EXPIRED, "Not paid after the final reminder."
    order.save(update_fields=["status", "status_reason", "updated_at"])
    Invoice.objects.filter(pk=order.invoice_id, status=Invoice.Status.OPEN).update(status=Invoice.Status.VOID)
    return True
