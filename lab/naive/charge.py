"""Naive charge: load the order, skip it if it is paid, call the gateway, mark it paid; retry on any
gateway error, five times, a second apart.

The shape: `charge = Stripe::PaymentIntent.create(amount: ...); order.update!(status: "paid")` in a job
with `retry_on Stripe::StripeError, attempts: 5`. What goes wrong:
- no Idempotency-Key: when the gateway charged but the answer was lost (a dropped connection, a worker
  killed before `update!`), the retry charges the card again; the "already paid?" check cannot see a
  charge that was never recorded (row 2);
- no circuit breaker: every order, and every retry of it, calls a gateway that is down (row 6).
The shop's version: billing/payments.py (key committed before the call), jobkit/breaker.py.
"""

from __future__ import annotations

import stripe

from lab.naive.app import app, gateway
from orders.models import Order


@app.task(autoretry_for=(stripe.StripeError,), max_retries=5, default_retry_delay=1)
def charge_order(order_id: str) -> None:
    order = Order.objects.get(public_id=order_id)
    if order.status == Order.Status.PAID:
        return
    pay(order)


def pay(order: Order) -> None:
    """One gateway call, then the status: the two steps a lost answer splits."""
    gateway().v1.payment_intents.create(
        params={
            "amount": int(order.total * 100),
            "currency": order.currency.lower(),
            "payment_method": order.payment_method,
            "confirm": True,
            "payment_method_types": ["card"],
            "metadata": {"order": str(order.public_id)},
        }
    )
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PAID)
