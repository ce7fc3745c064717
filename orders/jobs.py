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
