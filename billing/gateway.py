"""The payment gateway, through the official `stripe` SDK.

By default it talks to the local sandbox; with an `sk_test_` key and no STRIPE_API_BASE it talks to
real Stripe test mode. This module only translates: SDK errors become TransientError (retry later)
or PermanentError (do not retry); a declined card is a normal outcome, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import stripe
from django.conf import settings

from jobkit.breaker import breaker_for
from jobkit.errors import PermanentError, TransientError, is_outage

# Stripe's test payment methods the storefront offers; the sandbox knows the same ids.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "Visa ending 4242 (succeeds)",
    "pm_card_mastercard": "Mastercard ending 4444 (succeeds)",
    "pm_card_chargeDeclined": "Visa ending 0002 (declined)",
    "pm_card_chargeDeclinedInsufficientFunds": "Visa ending 9995 (insufficient funds)",
}


@dataclass(frozen=True)
class ChargeOutcome:
    succeeded: bool
    payment_intent_id: str
    failure_code: str = ""
    failure_message: str = ""


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str | None, retries: int) -> stripe.StripeClient:
    base = {"api": api_base} if api_base else None
    return stripe.StripeClient(api_key, base_addresses=base, max_network_retries=retries)


def client() -> stripe.StripeClient:
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_MAX_NETWORK_RETRIES)


def charge(
    *, amount_minor: int, currency: str, payment_method: str, idempotency_key: str, metadata: dict[str, str]
) -> ChargeOutcome:
    """Create and confirm a PaymentIntent. The same key always yields the same single charge."""
    params = {
        "amount": amount_minor,
        "currency": currency.lower(),
        "payment_method": payment_method,
        "confirm": True,
        "metadata": metadata,
        "payment_method_types": ["card"],
    }
    with breaker_for("payments").guard(is_outage):  # open breaker: CircuitOpen, the gateway is not called
        try:
            intent = client().v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key}
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
        raise TransientError(f"payment {intent.id} still processing")
    return ChargeOutcome(False, intent.id, intent.status, f"payment ended in status {intent.status}")


def refund(*, payment_intent_id: str, amount_minor: int, idempotency_key: str) -> str:
    """Refund a payment; the same key never refunds twice. Returns the gateway's refund id."""
    params = {"payment_intent": payment_intent_id, "amount": amount_minor}
    with breaker_for("payments").guard(is_outage):
        try:
            created = client().v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})
        except Exception as exc:
            raise classify(exc) from exc
    return created.id


def classify(exc: Exception) -> Exception:
    """Map an SDK error to the retry decision the jobs understand."""
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return TransientError(f"gateway unreachable: {exc}")
    if isinstance(exc, stripe.StripeError):
        status = exc.http_status or 0
        if status == 409:  # the same Idempotency-Key is in flight (another worker): ask again later
            return TransientError(f"gateway 409: {exc.user_message or exc}", outage=False)
        if status >= 500:
            return TransientError(f"gateway {status}: {exc.user_message or exc}")
        return PermanentError(f"gateway rejected the request ({status}): {exc.user_message or exc}")
    return exc
