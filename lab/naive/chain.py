"""Naive chained workflow: each step does its work and then enqueues the next one, on Celery's defaults.

The shape: `StartOrder` marks the order processing and enqueues `Charge`, which enqueues `InvoicePdf`,
which enqueues `InvoiceEmail`, which marks the order completed. Where the workflow is lives only in the
message of the step that is running. What goes wrong when the process running a step dies (the OOM
killer, a segfault, a deploy's SIGKILL): Celery's defaults acknowledge a message when a worker process
takes it (`acks_late` off) and do not requeue the job of a process that died (`reject_on_worker_lost`
off), so the step's message is gone, the next steps are never enqueued and nothing looks at the order
again: it stays `processing` for good. The shop's: orders/pipeline.py (late ack, requeued on a lost
process, every hand-off on commit, and the recovery sweep that moves a stuck order on from its state).
"""

from __future__ import annotations

import stripe
from django.core.mail import send_mail

from billing.invoices import store_pdf
from lab.naive.app import app
from lab.naive.charge import pay
from orders.models import Order


@app.task
def start_order(order_id: str) -> None:
    Order.objects.filter(public_id=order_id).update(status=Order.Status.PROCESSING)
    charge.delay(order_id)


@app.task(autoretry_for=(stripe.StripeError,), max_retries=5, default_retry_delay=1)
def charge(order_id: str) -> None:
    pay(Order.objects.get(public_id=order_id))
    invoice_pdf.delay(order_id)


@app.task
def invoice_pdf(order_id: str) -> None:
    store_pdf(Order.objects.get(public_id=order_id).invoice_id)
    invoice_email.delay(order_id)


@app.task
def invoice_email(order_id: str) -> None:
    order = Order.objects.get(public_id=order_id)
    send_mail("Your invoice", "Your invoice is attached.", None, [order.email])
    Order.objects.filter(pk=order.pk).update(status=Order.Status.COMPLETED)
