"""Trap B: a job whose whole worker is killed (SIGKILL to the main process and its pool: a node lost, an
OOM kill of the container, `docker kill`), on a Redis broker.

Two naive settings, the same job as lab/naive/charge.py:
- Celery's defaults (`charge.charge_order`): the message is acknowledged when a worker process takes it,
  so once the worker is gone nothing holds the job any more: it is lost for good, the order never paid;
- `acks_late=True` alone (`charge_order` here): the message stays unacknowledged in Redis while the job
  runs, and Redis hands it out again only once the visibility timeout has passed (Celery's default: an
  hour); then the job runs again from the top, with no Idempotency-Key.
The shop's: late ack and `reject_on_worker_lost` (shop/settings.py), every job idempotent, and the
recovery sweep (jobkit/recovery.py), which treats a message held by the broker as alive and re-sends work
whose message was lost.
"""

from __future__ import annotations

import stripe

from lab.naive.app import app
from lab.naive.charge import pay
from orders.models import Order


@app.task(acks_late=True, autoretry_for=(stripe.StripeError,), max_retries=5, default_retry_delay=1)
def charge_order(order_id: str) -> None:
    order = Order.objects.get(public_id=order_id)
    if order.status == Order.Status.PAID:
        return
    pay(order)
