"""What the recovery sweep (jobkit.recovery) needs to know about orders: which are stuck, and which
job moves each on from where its committed state says it is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from jobkit.recovery import Stuck
from jobkit.tasks import ShopTask
from notifications import services as notifications
from orders import emails, jobs
from orders.models import Order, Shipment

# Statuses in which an order is waiting for a job of ours to move it on.
IN_FLIGHT = (Order.Status.PLACED, Order.Status.PROCESSING, Order.Status.PAID)


def stuck_orders(cutoff: datetime) -> Iterator[Stuck]:
    waiting = Order.objects.filter(status__in=IN_FLIGHT, updated_at__lt=cutoff).select_related("invoice")
    for order in waiting.order_by("id").iterator(chunk_size=200):
        order_id = str(order.public_id)
        yield Stuck(order.subject, [(job, (order_id,)) for job in next_jobs(order)])


def next_jobs(order: Order) -> list[ShopTask]:
    if order.status == Order.Status.PLACED:
        return [jobs.process_order]
    if order.status == Order.Status.PROCESSING:
        return [jobs.charge_order]
    missing = []
    if not order.invoice.pdf:
        missing.append(jobs.render_invoice_pdf)
    elif not notifications.was_sent(emails.INVOICE, order.subject):
        missing.append(jobs.send_invoice_email)
    if not notifications.was_sent(emails.CONFIRMATION, order.subject):
        missing.append(jobs.send_order_confirmation)
    if not Shipment.objects.filter(order=order).exists():
        missing.append(jobs.request_shipment)
    # nothing missing: only the completion check was lost; the confirmation job re-runs it cheaply
    return missing or [jobs.send_order_confirmation]
