"""Order operations. Views and jobs call these; none of them does slow work in a request.

Each step is idempotent and guarded by the order's status, read under a row lock, so a duplicate
delivery of a job message or a retry after a crash finds the step done and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from django.db import transaction
from django.db.models import F

from billing import services as billing
from billing.models import PaymentAttempt
from jobkit.enqueue import enqueue_on_commit
from orders.models import Order, OrderLine, Product


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int


@transaction.atomic
def place_order(*, email: str, lines: list[CartLine], payment_method: str) -> Order:
    """Write the order, its lines and its invoice in one transaction; processing starts on commit."""
    from orders import jobs  # jobs import services; keep the cycle out of module import time

    order = write_order(email=email, lines=lines, payment_method=payment_method)
    enqueue_on_commit(jobs.process_order, str(order.public_id))
    return order


def write_order(*, email: str, lines: list[CartLine], payment_method: str) -> Order:
    """The inserts of a checkout: order, lines, invoice (the checkout benchmark's baseline)."""
    total = sum((line.product.price * line.quantity for line in lines), Decimal("0"))
    order = Order.objects.create(
        email=email, currency=lines[0].product.currency, total=total, payment_method=payment_method
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product=line.product,
            sku=line.product.sku,
            name=line.product.name,
            unit_price=line.product.price,
            quantity=line.quantity,
        )
        for line in lines
    )
    billing.issue_order_invoice(order)
    return order


class OutOfStock(Exception):
    pass


@transaction.atomic
def process_order(order_id: str) -> None:
    """Reserve stock and hand over to the charge; a no-op if the order is already past `placed`."""
    from orders import jobs

    order = Order.objects.select_for_update().get(public_id=order_id)
    if order.status != Order.Status.PLACED:
        return
    try:
        _reserve_stock(order)
    except OutOfStock as exc:
        order.status, order.status_reason = Order.Status.CANCELLED, str(exc)
        order.save(update_fields=["status", "status_reason", "updated_at"])
        return
    order.status = Order.Status.PROCESSING
    order.save(update_fields=["status", "updated_at"])
    enqueue_on_commit(jobs.charge_order, str(order.public_id))


def _reserve_stock(order: Order) -> None:
    # Conditional decrements in sku order: no oversell, and no lock-order deadlock between two orders.
    with transaction.atomic():
        for line in order.lines.order_by("sku"):
            reserved = Product.objects.filter(pk=line.product_id, stock__gte=line.quantity).update(
                stock=F("stock") - line.quantity
            )
            if not reserved:
                raise OutOfStock(f"{line.sku} is out of stock")


def charge_order(order_id: str) -> None:
    """Collect the order's invoice through the idempotent charge; settle the order in the same commit."""
    order = Order.objects.select_related("invoice").get(public_id=order_id)
    if order.status != Order.Status.PROCESSING:
        return
    billing.charge_invoice(
        order.invoice.pk, order.payment_method, on_settled=partial(_settle_order, order.pk)
    )


def _settle_order(order_pk: int, attempt: PaymentAttempt) -> None:
    order = Order.objects.select_for_update().get(pk=order_pk)
    if order.status != Order.Status.PROCESSING:
        return
    if attempt.status == PaymentAttempt.Status.SUCCEEDED:
        order.status, order.status_reason = Order.Status.PAID, ""
    else:
        order.status = Order.Status.PAYMENT_FAILED
        order.status_reason = attempt.failure_message or attempt.failure_code
    order.save(update_fields=["status", "status_reason", "updated_at"])
