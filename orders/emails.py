"""The emails about an order. Each is sent through the notifications ledger, so at most once."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import Invoice
from orders.models import Order

CONFIRMATION = "order_confirmation"
INVOICE = "order_invoice"


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
