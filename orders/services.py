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
from billing.models import Invoice, PaymentAttempt
from jobkit.enqueue import enqueue_on_commit
from jobkit.outside import fit
from notifications import reminders
from notifications import services as notifications
from notifications.models import Reminder
from orders import carrier, emails
from orders.models import Order, OrderLine, Product, Shipment


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


class NotAllowed(Exception):
    """The order is not in a state that allows this action."""


@transaction.atomic
def retry_payment(order_id: str, payment_method: str) -> Order:
    """Pay a `payment_failed` order again: a new PaymentAttempt (and so a new Idempotency-Key)."""
    from orders import jobs

    order = Order.objects.select_for_update().get(public_id=order_id)
    if order.status != Order.Status.PAYMENT_FAILED:
        raise NotAllowed(f"Only an order whose payment failed can be paid again; this one is {order.status}.")
    order.payment_method, order.status, order.status_reason = payment_method, Order.Status.PROCESSING, ""
    order.save(update_fields=["payment_method", "status", "status_reason", "updated_at"])
    reminders.cancel(order.subject)
    enqueue_on_commit(jobs.charge_order, order_id)
    return order


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
    billing.charge_invoice(order.invoice.pk, order.payment_method)


def order_wants_payment(order_pk: int) -> bool:
    return Order.objects.filter(pk=order_pk, status=Order.Status.PROCESSING).exists()


def settle_order_payment(order_pk: int, attempt: PaymentAttempt) -> None:
    """Apply a recorded payment to its order (runs in the transaction that records it)."""
    order = Order.objects.select_for_update().get(pk=order_pk)
    if order.status != Order.Status.PROCESSING:
        return
    if attempt.status == PaymentAttempt.Status.SUCCEEDED:
        order.status, order.status_reason = Order.Status.PAID, ""
        _fan_out(order)
    else:
        order.status = Order.Status.PAYMENT_FAILED
        order.status_reason = fit(Order, "status_reason", attempt.failure_message or attempt.failure_code)
        reminders.schedule(order.subject)
    order.save(update_fields=["status", "status_reason", "updated_at"])


def _fan_out(order: Order) -> None:
    """A paid order's independent follow-ups, each its own job on its own queue, sent on commit."""
    from orders import jobs

    order_id = str(order.public_id)
    for job in (jobs.render_invoice_pdf, jobs.send_order_confirmation, jobs.request_shipment):
        enqueue_on_commit(job, order_id)


def render_invoice_pdf(order_id: str) -> None:
    """Store the invoice PDF, then hand over to the invoice email (also when the PDF already existed,
    so a crash between the two is healed by the redelivered job; the email ledger prevents a resend)."""
    from orders import jobs

    order = Order.objects.select_related("invoice").get(public_id=order_id)
    billing.store_invoice_pdf(order.invoice.pk)
    enqueue_on_commit(jobs.send_invoice_email, order_id)


def send_invoice_email(order_id: str) -> None:
    order = Order.objects.select_related("invoice").get(public_id=order_id)
    notifications.send_once(
        emails.INVOICE, order.subject, order.email, partial(emails.invoice, order.invoice)
    )
    complete_if_done(order_id)


def send_order_confirmation(order_id: str) -> None:
    order = Order.objects.get(public_id=order_id)
    notifications.send_once(
        emails.CONFIRMATION, order.subject, order.email, partial(emails.confirmation, order)
    )
    complete_if_done(order_id)


def request_shipment(order_id: str) -> None:
    order = Order.objects.prefetch_related("lines").get(public_id=order_id)
    if not Shipment.objects.filter(order=order).exists():
        items = [{"sku": line.sku, "quantity": line.quantity} for line in order.lines.all()]
        created = carrier.create_shipment(order_id, f"c/o {order.email}", items)
        Shipment.objects.get_or_create(
            order=order,
            defaults={
                "carrier_reference": created["id"],
                "tracking_number": created.get("tracking_number", ""),
            },
        )
    complete_if_done(order_id)


@transaction.atomic
def complete_if_done(order_id: str) -> bool:
    """`completed` once every follow-up of a paid order is done, decided from the database alone.

    Each follow-up job calls this after committing its own effect, so whichever finishes last sees
    all of them; no chord, no counter to keep in step.
    """
    order = Order.objects.select_for_update(of=("self",)).select_related("invoice").get(public_id=order_id)
    if order.status != Order.Status.PAID:
        return order.status == Order.Status.COMPLETED
    done = (
        bool(order.invoice.pdf)
        and notifications.was_sent(emails.INVOICE, order.subject)
        and notifications.was_sent(emails.CONFIRMATION, order.subject)
        and Shipment.objects.filter(order=order).exists()
    )
    if done:
        order.status = Order.Status.COMPLETED
        order.save(update_fields=["status", "updated_at"])
    return done


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
        _release_stock(order)
        order.status, order.status_reason = Order.Status.EXPIRED, "Not paid after the final reminder."
        order.save(update_fields=["status", "status_reason", "updated_at"])
        Invoice.objects.filter(order=order, status=Invoice.Status.OPEN).update(status=Invoice.Status.VOID)
    return True


def _release_stock(order: Order) -> None:
    for line in order.lines.order_by("sku"):
        Product.objects.filter(pk=line.product_id).update(stock=F("stock") + line.quantity)
