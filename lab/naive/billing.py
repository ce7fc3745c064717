"""Naive batch billing: one job loops over every due subscription, charges it and moves its period on,
all inside one database transaction; `acks_late` so that a job whose worker died runs again.

The shape: a daily `BillSubscriptions` job, `due.find_each { |s| charge(s); s.renew! }` wrapped in a
transaction "for consistency", with late acknowledgement turned on. What goes wrong when the worker dies
mid-loop: the charges already made stay made at the gateway, while the transaction that recorded them is
rolled back; the message comes back (late ack) and the loop starts again from the first subscription:
everyone billed before the crash is charged a second time (no Idempotency-Key, no per-item record
committed before the call). The shop's: subscriptions/renewals.py (batches, each member's invoice and
payment attempt committed before the call, whose key the call carries).
"""

from __future__ import annotations

import datetime

from django.db import transaction

from lab.naive.app import app, gateway
from subscriptions.models import Subscription


@app.task(acks_late=True)
def bill_due_subscriptions(billing_date: str) -> None:
    day = datetime.date.fromisoformat(billing_date)
    with transaction.atomic():
        due = Subscription.objects.filter(status=Subscription.Status.ACTIVE, current_period_end__lte=day)
        for subscription in due.select_related("plan").order_by("id"):
            gateway().v1.payment_intents.create(
                params={
                    "amount": int(subscription.plan.price * 100),
                    "currency": subscription.plan.currency.lower(),
                    "payment_method": subscription.payment_method,
                    "confirm": True,
                    "payment_method_types": ["card"],
                    "metadata": {"subscription_id": str(subscription.public_id)},
                }
            )
            subscription.current_period_start = subscription.current_period_end
            subscription.current_period_end += datetime.timedelta(days=30)
            subscription.save(update_fields=["current_period_start", "current_period_end"])
