"""The naive jobs' Celery app: `celery -A lab.naive.app worker` runs them on the lab's broker.

An app of its own, so the shop's Celery app never learns of the lab: Celery's defaults (early ack, no
`reject_on_worker_lost`, prefetch 4), as article-style code runs, and the shop's tables through its models.
Its keys carry a prefix on the shared broker, so neither app's worker restores the other's messages.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django.setup()

import stripe  # noqa: E402
from celery import Celery  # noqa: E402
from django.conf import settings  # noqa: E402

from envconfig import env_int  # noqa: E402

# Seconds before Redis hands a taken, unacknowledged message to a worker again. Celery's default is an
# hour; the lab shortens it (as the shop's test stack does) so the traps that hinge on it show in seconds.
# The naive app's keys on the broker start with this (the lab reads its queue and unacked hash).
NAIVE_PREFIX = "naive:"
VISIBILITY_TIMEOUT = env_int("LAB_NAIVE_VISIBILITY_TIMEOUT", 3, minimum=1)

app = Celery(
    "naive",
    broker=settings.REDIS_URL,
    include=[
        "lab.naive.charge",
        "lab.naive.breaker",
        "lab.naive.signup",
        "lab.naive.reminders",
        "lab.naive.order",
        "lab.naive.chain",
        "lab.naive.billing",
        "lab.naive.worker_lost",
    ],
    set_as_current=False,  # the shop's tasks (shared_task) stay bound to the shop's app
)
app.conf.update(
    task_default_queue="naive",
    task_ignore_result=True,
    broker_transport_options={
        "global_keyprefix": NAIVE_PREFIX,
        "visibility_timeout": VISIBILITY_TIMEOUT,
        # Look for messages to restore every second (kombu's default: every 100 s), as the shop's test stack.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        # A worker SIGKILLed while restoring would hold the restore lock for kombu's 300 s (shop/settings.py).
        "unacked_mutex_expire": VISIBILITY_TIMEOUT,
    },
)


def gateway() -> stripe.StripeClient:
    """The official SDK against the lab's sandbox, one attempt per call like the shop's client: the job's
    retry is the only retry (the SDK's own retries would add an idempotency key the naive code never had)."""
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY, base_addresses={"api": settings.STRIPE_API_BASE}, max_network_retries=0
    )
