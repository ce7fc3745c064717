"""The order's payment reminders (pattern 5 is in `notifications/reminders.py`): registered as the
"order" reminder handler in `orders/apps.py`."""

from __future__ import annotations

from functools import partial

from billing.models import Invoice
from notifications import services as notifications
from notifications.models import Reminder
from orders import emails
from orders.checkout import release_stock
from orders.models import Order


def remind_unpaid_order(order_id: str, reminder: Reminder) -> bool:
    """A due payment reminder: send it only if the order is still unpaid; the final one expires it."""
    order = Order.objects.select_for_update().get(public_id=order_id)
    if order.status != Order.Status.PAYMENT_FAILED:
        return False  # paid again, or cancelled, since the reminder was planned
    notifications.send_once(
        f"{emails.PAYMENT_REMINDER}_{reminder.sequence}",
        order.subject,
        order.email,
        partial(emails.payment_reminder, order, reminder),
    )
    if reminder.final:
        release_stock(order)
        order.status, order.status_reason = Order.Status.EXPIRED, "Not paid after the final reminder."
        order.save(update_fields=["status", "status_reason", "updated_at"])
        Invoice.objects.filter(pk=order.invoice_id, status=Invoice.Status.OPEN).update(
            status=Invoice.Status.VOID
        )
    return True
