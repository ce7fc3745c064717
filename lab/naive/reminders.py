"""Naive payment reminder: when a payment is declined, `apply_async(countdown=...)` a job that emails the
customer when the countdown ends.

The shape: `PaymentReminderJob.set(wait: 24.hours).perform_later(order)`, the job sending without a look
at the order. What goes wrong:
- the job never re-checks the order: a customer who paid meanwhile still gets "your order is not paid"
  (row 5);
- on Redis, a message with a countdown waits in the worker, taken and unacknowledged; once the countdown
  passes the broker's visibility timeout, Redis hands it out again, and again (kombu issue 337): the
  reminder goes out once per hand-out (trap A).
The shop's: notifications/reminders.py (reminders are rows with a due time, claimed by a periodic job
that re-checks the order under a lock; every countdown it sends is kept below the visibility timeout).
"""

from __future__ import annotations

from django.core.mail import send_mail

from lab.naive.app import app
from orders.models import Order


@app.task
def send_payment_reminder(order_id: str) -> None:
    order = Order.objects.get(public_id=order_id)
    send_mail("Reminder: your order is not paid yet", "Please pay your order.", None, [order.email])


def payment_declined(order: Order, countdown: float) -> None:
    """What the naive decline handler does: the reminder is scheduled now, for later."""
    send_payment_reminder.apply_async((str(order.public_id),), countdown=countdown)
