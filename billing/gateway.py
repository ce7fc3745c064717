"""The payment gateway, through the official `stripe` SDK.

By default it talks to the local sandbox; with an `sk_test_` key and no STRIPE_API_BASE it talks to
real Stripe test mode. This module only translates: an SDK error becomes the answer it stands for (no
answer, or an HTTP status), which `jobkit.outside` classifies for every client alike; a declined card is
a normal outcome, not an error. The SDK makes one attempt per call (no retries of its own: the job's
retry policy is the one retry layer) and gives up after STRIPE_TIMEOUT_SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import stripe
from django.conf import settings

from jobkit.errors import TransientError
from jobkit.outside import http_error, no_answer, outside_call

# Stripe's test payment methods the storefront offers; the sandbox knows the same ids.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "Visa ending 4242 (succeeds)",
    "pm_card_mastercard": "Mastercard ending 4444 (succeeds)",
    "pm_card_chargeDeclined": "Visa ending 0002 (declined)",
    "pm_card_chargeDeclinedInsufficientFunds": "Visa ending 9995 (insufficient funds)",
}


@dataclass(frozen=True)
class ChargeRequest:
    """One PaymentIntent to create and confirm: plain values, so the call can run in any thread."""

    amount_minor: int
    currency: str
    payment_method: str
    idempotency_key: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class ChargeOutcome:
    succeeded: bool
    payment_intent_id: str
    failure_code: str = ""
    failure_message: str = ""


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str | None, timeout: float) -> stripe.StripeClient:
    base = {"api": api_base} if api_base else None
    # max_network_retries=0: SDK retries under the job's retries multiply the calls a down gateway gets,
    # and hide each failure from the circuit breaker. One client serves every thread of a process (a
    # billing batch's calls): a StripeClient keeps no per-request state, and RequestsClient keeps one
    # requests.Session per thread (threading.local, stripe-python PRs #531 and #534), since a Session is
    # not thread-safe.
    http = stripe.RequestsClient(timeout=timeout)
    return stripe.StripeClient(api_key, base_addresses=base, max_network_retries=0, http_client=http)


def client() -> stripe.StripeClient:
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT_SECONDS)


def intent_params(request: ChargeRequest) -> dict[str, Any]:
    """The PaymentIntent a charge creates and confirms at once."""
    return {
        "amount": request.amount_minor,
        "currency": request.currency.lower(),
        "payment_method": request.payment_method,
        "confirm": True,
        "metadata": request.metadata,
        "payment_method_types": ["card"],
    }


def charge(request: ChargeRequest) -> ChargeOutcome:
    """Create and confirm a PaymentIntent. The same key always yields the same single charge."""
    params = intent_params(request)
    # An open breaker raises CircuitOpen, a turn of the rate limiter too far off RateLimited: no call.
    with outside_call("payments"):
        try:
            intent = client().v1.payment_intents.create(
                params=params, options={"idempotency_key": request.idempotency_key}
            )
        except stripe.CardError as exc:  # a decline is the gateway working normally
            error = exc.error
            intent_id = error.payment_intent.id if error and error.payment_intent else ""
            code = (error.decline_code or error.code) if error else "card_declined"
            return ChargeOutcome(False, intent_id, code or "card_declined", exc.user_message or str(exc))
        except Exception as exc:
            raise classify(exc) from exc
    if intent.status == "succeeded":
        return ChargeOutcome(True, intent.id)
    if intent.status == "processing":
        raise TransientError(f"payment {intent.id} still processing", outage=False)
    return ChargeOutcome(False, intent.id, intent.status, f"payment ended in status {intent.status}")


def refund(*, payment_intent_id: str, amount_minor: int, idempotency_key: str) -> str:
    """Refund a payment; the same key never refunds twice. Returns the gateway's refund id."""
    params = {"payment_intent": payment_intent_id, "amount": amount_minor}
    with outside_call("payments"):
        try:
            created = client().v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})
        except Exception as exc:
            raise classify(exc) from exc
    return created.id


def classify(exc: Exception) -> Exception:
    """The answer an SDK error stands for, as `jobkit.outside` decides about it."""
    if isinstance(exc, stripe.StripeError):
        if exc.http_status:
            return http_error("gateway", exc.http_status, exc.user_message or exc)
        return no_answer("gateway", exc)  # APIConnectionError: refused, reset, timed out
    return exc
