"""The emails about an order. Each is sent through the notifications ledger, so at most once."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import Invoice
from notifications.models import Reminder
from orders.models import Order

CONFIRMATION = "order_confirmation"
INVOICE = "order_invoice"
PAYMENT_REMINDER = "order_payment_reminder"


def confirmation(order: Order) -> EmailMessage:
    url = settings.SHOP_BASE_URL + reverse("order-page", args=[order.public_id])
    body = render_to_string("orders/email/confirmation.txt", {"order": order, "url": url})
    return EmailMessage(subject=f"Your order {str(order.public_id)[:8]} is confirmed", body=body)


def invoice(invoice: Invoice) -> EmailMessage:
    message = EmailMessage(
        subject=f"Invoice {invoice.number}",
        body=render_to_string("orders/email/invoice.txt", {"invoice": invoice}),
    )
    with invoice.pdf.open("rb") as pdf:
        message.attach(f"{invoice.number}.pdf", pdf.read(), "application/pdf")
    return message


def payment_reminder(order: Order, reminder: Reminder) -> EmailMessage:
    url = settings.SHOP_BASE_URL + reverse("order-page", args=[order.public_id])
    last = " This is the last reminder: unpaid, the order will be cancelled." if reminder.final else ""
    body = (
        f"Hello,\n\nyour order of {order.total} {order.currency} is waiting for payment:"
        " the card was declined."
        f"{last}\n\nPay with another card at {url}\n\nJob Shop\n"
    )
    return EmailMessage(subject=f"Reminder {reminder.sequence}: your order is not paid yet", body=body)
