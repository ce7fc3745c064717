"""Naive order processing: one `process_order` job charges the card, stores the invoice PDF, emails the
customer and asks the carrier to ship, in that order; any error retries the whole job, a second apart.

The shape: a single ProcessOrder job whose body calls each step in turn, with a blanket retry. What goes
wrong while the mail server is down: the email step fails, so the shipment after it never happens (the
carrier hears nothing until mail is back), and every retry starts again at the top: the card is charged
once per attempt (no Idempotency-Key) before the email fails again. The shop's: orders/pipeline.py (each
follow-up its own job, with its own retry policy; each idempotent).
"""

from __future__ import annotations

import requests
from django.conf import settings
from django.core.mail import send_mail

from billing.invoices import store_pdf
from lab.naive.app import app
from lab.naive.charge import pay
from orders.models import Order


@app.task(autoretry_for=(Exception,), max_retries=8, default_retry_delay=1)
def process_order(order_id: str) -> None:
    order = Order.objects.get(public_id=order_id)
    pay(order)
    store_pdf(order.invoice_id)
    send_mail("Your order", "Thank you for your order.", None, [order.email])
    ship(order)


def ship(order: Order) -> None:
    """Ask the carrier to ship, with no Idempotency-Key: each request is a new shipment."""
    response = requests.post(
        f"{settings.CARRIER_API_BASE}/shipments",
        json={"reference": str(order.public_id), "address": f"c/o {order.email}", "items": []},
        headers={"Authorization": f"Bearer {settings.CARRIER_API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
