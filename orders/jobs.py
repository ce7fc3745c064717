"""Order jobs: thin wrappers that load ids and call services. Retry policy lives in ShopTask."""

from __future__ import annotations

from jobkit.tasks import ShopTask
from orders import services
from shop.celery import app


@app.task(base=ShopTask, name="orders.process_order", subject_kind="order")
def process_order(order_id: str) -> None:
    services.process_order(order_id)


@app.task(base=ShopTask, name="orders.charge_order", subject_kind="order")
def charge_order(order_id: str) -> None:
    services.charge_order(order_id)


# The paid order's follow-ups: independent jobs, each with the retry policy its failure modes need.
@app.task(base=ShopTask, name="orders.render_invoice_pdf", subject_kind="order", max_retries=3)
def render_invoice_pdf(order_id: str) -> None:
    services.render_invoice_pdf(order_id)  # a template error is PermanentError: dead at once, no retries


@app.task(base=ShopTask, name="orders.send_invoice_email", subject_kind="order", max_retries=10)
def send_invoice_email(order_id: str) -> None:
    services.send_invoice_email(order_id)


@app.task(base=ShopTask, name="orders.send_order_confirmation", subject_kind="order", max_retries=10)
def send_order_confirmation(order_id: str) -> None:
    services.send_order_confirmation(order_id)


@app.task(base=ShopTask, name="orders.request_shipment", subject_kind="order", max_retries=10)
def request_shipment(order_id: str) -> None:
    services.request_shipment(order_id)  # 5xx and timeouts retry; a 4xx is PermanentError
