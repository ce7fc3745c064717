"""What the recovery sweep (jobkit.recovery) needs to know about orders: which are stuck, and which
job moves each on from where its committed state says it is."""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime

from jobkit.recovery import Stuck, in_pages
from orders import jobs, pipeline
from orders.models import Order

# Statuses in which an order is waiting for a job of ours to move it on.
IN_FLIGHT = (Order.Status.PLACED, Order.Status.PROCESSING, Order.Status.PAID)
NEXT_JOB = {Order.Status.PLACED: jobs.reserve_stock, Order.Status.PROCESSING: jobs.charge_order}


def stuck_orders(cutoff: datetime) -> Generator[Stuck, None, None]:
    waiting = Order.objects.filter(status__in=IN_FLIGHT, updated_at__lt=cutoff)
    for order in in_pages(waiting):
        order_id = str(order.public_id)
        if order.status in NEXT_JOB:
            next_jobs = [NEXT_JOB[order.status]]
        else:  # paid: the follow-ups not done yet; none missing means only the completion check was lost,
            # which the confirmation job re-runs cheaply
            missing = pipeline.missing_follow_ups(order_id) or ["send_order_confirmation"]
            next_jobs = [getattr(jobs, name) for name in missing]
        yield Stuck(order.subject, [(job, (order_id,)) for job in next_jobs])
