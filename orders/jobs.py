"""Order jobs: thin wrappers that load ids and call a service. Retry policy lives in the base task."""

from __future__ import annotations

from celery import shared_task

from jobkit.tasks import JobTask
from orders import checkout, pipeline


@shared_task(base=JobTask, name="orders.reserve_stock", subject_kind="order")
def reserve_stock(order_id: str) -> None:
    checkout.reserve_stock(order_id)


@shared_task(base=JobTask, name="orders.charge_order", subject_kind="order")
def charge_order(order_id: str) -> None:
    checkout.charge_order(order_id)


# The paid order's follow-ups: independent jobs, each with the retry policy its failure modes need.
@shared_task(base=JobTask, name="orders.store_invoice_pdf", subject_kind="order", max_retries=3)
def store_invoice_pdf(order_id: str) -> None:
    pipeline.store_invoice_pdf(order_id)  # a template error is PermanentError: dead at once, no retries


@shared_task(base=JobTask, name="orders.send_invoice_email", subject_kind="order", max_retries=10)
def send_invoice_email(order_id: str) -> None:
    pipeline.send_invoice_email(order_id)


@shared_task(base=JobTask, name="orders.send_order_confirmation", subject_kind="order", max_retries=10)
def send_order_confirmation(order_id: str) -> None:
    pipeline.send_order_confirmation(order_id)


@shared_task(base=JobTask, name="orders.request_shipment", subject_kind="order", max_retries=10)
def request_shipment(order_id: str) -> None:
    pipeline.request_shipment(order_id)  # 5xx and timeouts retry; a 4xx is PermanentError
