"""Checkout: the writes a customer's request makes, and the steps that take a new order to its charge.

The request path only writes (order, lines, invoice, the first job's timeline row) in one transaction;
everything slow happens in jobs, each enqueued on commit (`jobkit/enqueue.py`). Each step is guarded by
the order's status, moved on by a conditional UPDATE or read under a row lock, so a duplicate delivery
or a retry after a crash does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F

from billing import payments
from billing.invoices import Line, issue_invoice
from jobkit.enqueue import enqueue_on_commit
from notifications import reminders
from orders.models import Order, OrderLine, Product


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int


class OutOfStock(Exception):
    pass


class NotPayable(Exception):
    """The order is not in a state in which it can be paid again."""


@transaction.atomic
def place_order(*, email: str, lines: list[CartLine], payment_method: str) -> Order:
    """Write the order, its lines and its invoice in one transaction; processing starts on commit."""
    from orders import jobs  # jobs import this module; keep the cycle out of module import time

    order = write_order(email=email, lines=lines, payment_method=payment_method)
    enqueue_on_commit(jobs.reserve_stock, str(order.public_id))
    return order


def write_order(*, email: str, lines: list[CartLine], payment_method: str) -> Order:
    """The inserts of a checkout: invoice, order, lines (the checkout benchmark's baseline)."""
    order = Order(email=email, currency=lines[0].product.currency, payment_method=payment_method)
    order.invoice = issue_invoice(
        owner=order.subject,
        email=email,
        currency=order.currency,
        lines=[Line(f"{c.product.name} ({c.product.sku})", c.product.price, c.quantity) for c in lines],
    )
    order.total = order.invoice.amount
    order.save()
    OrderLine.objects.bulk_create(
        OrderLine(order=order, product=line.product, sku=line.product.sku, name=line.product.name,
                  unit_price=line.product.price, quantity=line.quantity)
        for line in lines
    )  # fmt: skip
    return order


def reserve_stock(order_id: str) -> None:
    """Reserve the order's stock and hand over to the charge; a no-op once the order is past `placed`.
    Out of stock, the reservation rolls back whole, and the order is cancelled in a transaction of its own."""
    try:
        _reserve(order_id)
    except OutOfStock as exc:
        _cancel_placed(order_id, str(exc))


@transaction.atomic
def _reserve(order_id: str) -> None:
    from orders import jobs  # jobs import this module; keep the cycle out of module import time

    # One conditional UPDATE moves the order on from `placed`, and from nothing else, and locks its row
    # until the reservation commits: a duplicate delivery waits for it, then finds nothing to move.
    if not Order.move(order_id, Order.Status.PLACED, Order.Status.PROCESSING):
        return
    # Conditional decrements in sku order: no oversell, and no lock-order deadlock between two orders.
    lines = OrderLine.objects.filter(order__public_id=order_id).order_by("sku")
    for product_id, sku, quantity in lines.values_list("product_id", "sku", "quantity"):
        reserved = Product.objects.filter(pk=product_id, stock__gte=quantity).update(
            stock=F("stock") - quantity
        )
        if not reserved:
            raise OutOfStock(f"{sku} is out of stock")
    enqueue_on_commit(jobs.charge_order, order_id)


def _cancel_placed(order_id: str, reason: str) -> None:
    Order.move(order_id, Order.Status.PLACED, Order.Status.CANCELLED, status_reason=reason)


def release_stock(order: Order) -> None:
    for line in order.lines.order_by("sku"):
        Product.objects.filter(pk=line.product_id).update(stock=F("stock") + line.quantity)


def charge_order(order_id: str) -> None:
    """Collect the order's invoice through the idempotent charge (`billing/payments.py`, pattern 2);
    the outcome reaches the order through `orders/payments.py`."""
    order = Order.objects.get(public_id=order_id)
    if order.status != Order.Status.PROCESSING:
        return
    payments.charge_invoice(order.invoice_id, order.payment_method)


@transaction.atomic
def pay_again(order_id: str, payment_method: str) -> Order:
    """Pay a `payment_failed` order again: a new PaymentAttempt (and so a new Idempotency-Key)."""
    from orders import jobs

    order = Order.objects.select_for_update().get(public_id=order_id)
    if order.status != Order.Status.PAYMENT_FAILED:
        raise NotPayable(f"Only an order whose payment failed can be paid again; this one is {order.status}.")
    order.payment_method, order.status, order.status_reason = payment_method, Order.Status.PROCESSING, ""
    order.save(update_fields=["payment_method", "status", "status_reason", "updated_at"])
    reminders.cancel(order.subject)
    enqueue_on_commit(jobs.charge_order, order_id)
    return order
