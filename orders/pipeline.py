"""The paid order's pipeline: patterns 1 (single-responsibility jobs) and 3 (a chained workflow).

    paid --on commit--> store_invoice_pdf --on commit--> send_invoice_email
                        send_order_confirmation
                        request_shipment
    each follow-up ends with complete_if_done(): `completed` once all four effects are in the database

Each follow-up is its own job on its own queue with the retry policy its failures need, so a mail outage
holds back neither the PDF nor the shipment. Each is idempotent (a stored PDF is not rendered again, the
email ledger sends once, the carrier's Idempotency-Key and a unique row ship once), and each hand-off
happens only after the step's own commit.
"""

from __future__ import annotations

from functools import partial

from django.utils import timezone

from billing.invoices import store_pdf
from jobkit.enqueue import enqueue_on_commit
from notifications import services as notifications
from orders import emails
from orders.models import Order
from shipping import services as shipping


def fan_out(order: Order) -> None:
    """A paid order's independent follow-ups, each its own job, sent when the payment's record commits."""
    from orders import jobs  # jobs import this module; keep the cycle out of module import time

    order_id = str(order.public_id)
    for job in (jobs.store_invoice_pdf, jobs.send_order_confirmation, jobs.request_shipment):
        enqueue_on_commit(job, order_id)


def store_invoice_pdf(order_id: str) -> None:
    """Store the invoice PDF, then hand over to the invoice email (also when the PDF already existed,
    so a crash between the two is healed by the redelivered job; the email ledger prevents a resend)."""
    from orders import jobs

    order = Order.objects.get(public_id=order_id)
    store_pdf(order.invoice_id)
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
    items = [{"sku": line.sku, "quantity": line.quantity} for line in order.lines.all()]
    shipping.request_shipment(order_id, f"c/o {order.email}", items)
    complete_if_done(order_id)


def complete_if_done(order_id: str) -> bool:
    """`completed` once every follow-up of a paid order is done, decided from the database alone.

    Each follow-up job calls this after committing its own effect, so whichever finishes last sees
    all of them; no chord, no counter to keep in step. Reading takes no lock: every follow-up but the
    last finds an effect missing and stops there. When none is missing, one conditional UPDATE moves
    the order on from `paid` and from nothing else, so two last finishers, or a refund at the same
    moment, cannot both win; an effect once in the database stays there, so none needs a second look.
    """
    order = Order.objects.select_related("invoice").get(public_id=order_id)
    if order.status != Order.Status.PAID:
        return order.status == Order.Status.COMPLETED
    if missing_follow_ups(order):
        return False
    moved = Order.objects.filter(pk=order.pk, status=Order.Status.PAID).update(
        status=Order.Status.COMPLETED, updated_at=timezone.now()
    )
    return moved == 1 or Order.objects.filter(pk=order.pk, status=Order.Status.COMPLETED).exists()


def missing_follow_ups(order: Order) -> list[str]:
    """Which of a paid order's effects are not in the database yet, by the job that makes each."""
    missing = []
    sent = notifications.kinds_sent(order.subject, [emails.INVOICE, emails.CONFIRMATION])
    if not order.invoice.pdf:
        missing.append("store_invoice_pdf")
    elif emails.INVOICE not in sent:
        missing.append("send_invoice_email")
    if emails.CONFIRMATION not in sent:
        missing.append("send_order_confirmation")
    if shipping.shipment_for(str(order.public_id)) is None:
        missing.append("request_shipment")
    return missing
