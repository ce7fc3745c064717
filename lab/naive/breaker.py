"""Naive circuit breaker: failure count and open-since time in module globals, that is in the memory of
each worker process.

The shape: a `CircuitBreaker` object created at class load, `breaker.run { gateway.charge }`, with the
same threshold and cooldown as the shop's (settings.CIRCUIT_BREAKERS). What goes wrong: every worker
process has its own, so a down gateway gets `threshold` calls from each process (and each probes after
its own cooldown); a restarted process starts closed. The shop's: jobkit/breaker.py (one state in Redis).
"""

from __future__ import annotations

import time

import stripe
from django.conf import settings

from lab.naive.app import app
from lab.naive.charge import pay
from orders.models import Order

_CONFIG = settings.CIRCUIT_BREAKERS["payments"]
_failures = 0
_opened_at: float | None = None


class CircuitOpen(Exception):
    pass


@app.task(autoretry_for=(stripe.StripeError, CircuitOpen), max_retries=5, default_retry_delay=1)
def charge_order(order_id: str) -> None:
    global _failures, _opened_at
    if _opened_at is not None and time.monotonic() - _opened_at < _CONFIG["cooldown_seconds"]:
        raise CircuitOpen("payments")
    try:
        pay(Order.objects.get(public_id=order_id))
    except stripe.StripeError:
        _failures += 1
        if _failures >= _CONFIG["failure_threshold"]:
            _opened_at = time.monotonic()
        raise
    _failures, _opened_at = 0, None
