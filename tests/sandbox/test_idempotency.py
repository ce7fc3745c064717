"""Stripe's Idempotency-Key semantics, through the SDK."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import stripe

from sandbox.testing import SandboxProcess

VISA = {"amount": 1500, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}


def test_same_key_and_params_replays_without_charging_again(
    sandbox: SandboxProcess, client: stripe.StripeClient
):
    first = client.v1.payment_intents.create(VISA, {"idempotency_key": "order-1-charge"})
    again = client.v1.payment_intents.create(VISA, {"idempotency_key": "order-1-charge"})

    assert again.id == first.id and again.latest_charge == first.latest_charge
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert [pi["id"] for pi in sandbox.payment_intents()] == [first.id]


def test_a_saved_decline_replays_as_the_same_decline(sandbox: SandboxProcess, client: stripe.StripeClient):
    declined = {**VISA, "payment_method": "pm_card_chargeDeclined"}
    ids = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as error:
            client.v1.payment_intents.create(declined, {"idempotency_key": "order-2-charge"})
        ids.append(error.value.error.payment_intent.id)
    assert ids[0] == ids[1] and len(sandbox.payment_intents()) == 1


def test_same_key_with_other_params_is_an_idempotency_error(
    sandbox: SandboxProcess, client: stripe.StripeClient
):
    client.v1.payment_intents.create(VISA, {"idempotency_key": "order-3-charge"})
    with pytest.raises(stripe.IdempotencyError) as error:
        client.v1.payment_intents.create({**VISA, "amount": 1501}, {"idempotency_key": "order-3-charge"})
    assert error.value.http_status == 400
    assert len(sandbox.payment_intents()) == 1


def test_a_request_failing_validation_saves_nothing(client: stripe.StripeClient):
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create({**VISA, "amount": -5}, {"idempotency_key": "order-4-charge"})
    # Not an IdempotencyError: the key is still free for a corrected request.
    fixed = client.v1.payment_intents.create(VISA, {"idempotency_key": "order-4-charge"})
    assert fixed.status == "succeeded"


def test_keys_are_scoped_per_api_key(sandbox: SandboxProcess, client: stripe.StripeClient):
    other = stripe.StripeClient("sk_test_other_account", base_addresses={"api": sandbox.api_base})
    mine = client.v1.payment_intents.create(VISA, {"idempotency_key": "shared-key"})
    theirs = other.v1.payment_intents.create({**VISA, "amount": 7}, {"idempotency_key": "shared-key"})
    assert theirs.id != mine.id and theirs.amount == 7


def test_a_concurrent_request_with_a_key_in_flight_gets_409(
    sandbox: SandboxProcess, make_client: Callable[[int], stripe.StripeClient]
):
    sandbox.set_fault("payments", latency_ms=800)
    first: list[stripe.PaymentIntent] = []
    worker = threading.Thread(
        target=lambda: first.append(
            make_client(0).v1.payment_intents.create(VISA, {"idempotency_key": "slow"})
        )
    )
    worker.start()
    time.sleep(0.3)  # the first request now holds the key while it "executes"
    with pytest.raises(stripe.APIError) as error:
        make_client(0).v1.payment_intents.create(VISA, {"idempotency_key": "slow"})
    worker.join()

    # The SDK maps 409 to a plain APIError; the body says what it was.
    assert error.value.http_status == 409
    assert (error.value.error.type, error.value.error.code) == ("idempotency_error", "idempotency_key_in_use")
    assert first[0].status == "succeeded"
    sandbox.clear_faults()
    assert make_client(0).v1.payment_intents.create(VISA, {"idempotency_key": "slow"}).id == first[0].id
    assert len(sandbox.payment_intents()) == 1
