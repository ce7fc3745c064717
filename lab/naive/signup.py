"""Naive sign-up: one job charges the first month, then registers the delivery at the carrier; any error
marks nothing and re-raises, and the job is retried whole, twice.

The shape: `def perform; charge!; register_delivery!; rescue => e; raise e; end` with `retry_on
StandardError`. What goes wrong when the carrier refuses the registration after the charge: each retry
charges again (no key), the last one gives up, and nothing refunds: the customer pays for a subscription
that does not exist. The shop's: subscriptions/signup.py (steps as jobs, a refund keyed by its row).
"""

from __future__ import annotations

import requests
from django.conf import settings

from lab.naive.app import app, gateway


@app.task(autoretry_for=(Exception,), max_retries=2, default_retry_delay=1)
def sign_up(reference: str, amount_minor: int, plan: str) -> None:
    gateway().v1.payment_intents.create(
        params={
            "amount": amount_minor,
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "payment_method_types": ["card"],
            "metadata": {"signup": reference},
        }
    )
    response = requests.post(
        f"{settings.CARRIER_API_BASE}/registrations",
        json={"reference": reference, "address": "1 Lab Street", "plan": plan},
        headers={"Authorization": f"Bearer {settings.CARRIER_API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
