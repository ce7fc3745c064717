"""Injected faults on the payment API, and the control API that sets them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest
import stripe

from sandbox.testing import SandboxError, SandboxProcess

VISA = {"amount": 4200, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}


def test_drop_after_commit_charges_once_and_a_retry_with_the_key_heals(
    sandbox: SandboxProcess, make_client: Callable[[int], stripe.StripeClient]
):
    sandbox.set_fault("payments", drop_after_commit=True)

    with pytest.raises(stripe.APIConnectionError):
        make_client(0).v1.payment_intents.create(VISA, {"idempotency_key": "crash-1"})
    charged = sandbox.payment_intents()
    assert (
        len(charged) == 1 and charged[0]["status"] == "succeeded"
    )  # the charge happened, the answer was lost
    assert (
        make_client(0).v1.payment_intents.create(VISA, {"idempotency_key": "crash-1"}).id == charged[0]["id"]
    )

    # The SDK's own retry (same key on every attempt) turns the lost answer into a normal result.
    healed = make_client(1).v1.payment_intents.create(VISA, {"idempotency_key": "crash-2"})
    assert healed.status == "succeeded"
    assert [pi["id"] for pi in sandbox.payment_intents()] == [charged[0]["id"], healed.id]


def test_outage_answers_503_and_counts_as_rejected(sandbox: SandboxProcess, client: stripe.StripeClient):
    sandbox.set_fault("payments", outage=True)
    with pytest.raises(stripe.APIError) as error:
        client.v1.payment_intents.create(VISA)
    assert error.value.http_status == 503 and error.value.error.type == "api_error"
    assert sandbox.stats()["payments"] == {"received": 1, "rejected": 1, "succeeded": 0}
    assert sandbox.payment_intents() == []  # control endpoints keep working during the outage

    sandbox.set_fault("payments", outage=False)
    assert client.v1.payment_intents.create(VISA).status == "succeeded"
    assert sandbox.stats()["payments"] == {"received": 2, "rejected": 1, "succeeded": 1}


def test_error_rate_one_fails_every_request_with_500(sandbox: SandboxProcess, client: stripe.StripeClient):
    sandbox.set_fault("payments", error_rate=1)
    with pytest.raises(stripe.APIError) as error:
        client.v1.payment_intents.create(VISA)
    assert error.value.http_status == 500
    assert sandbox.stats()["payments"]["rejected"] == 1 and sandbox.payment_intents() == []


def test_latency_delays_the_answer(sandbox: SandboxProcess, client: stripe.StripeClient):
    sandbox.set_fault("payments", latency_ms=300)
    started = time.monotonic()
    client.v1.payment_methods.retrieve("pm_card_visa")
    assert time.monotonic() - started >= 0.3


def test_rate_limit_answers_429_as_stripe_does_and_processes_nothing(
    sandbox: SandboxProcess, client: stripe.StripeClient
):
    limit, sent = 2, 20
    sandbox.set_fault("payments", rate_limit_per_second=limit)
    refused: list[str] = []
    started = time.monotonic()
    for n in range(sent):
        try:
            client.v1.payment_intents.create(VISA, {"idempotency_key": f"rate-{n}"})
        except stripe.RateLimitError as error:  # what the SDK makes of Stripe's 429
            assert error.http_status == 429
            assert (error.error.type, error.error.code) == ("invalid_request_error", "rate_limit")
            refused.append(f"rate-{n}")
    elapsed = time.monotonic() - started
    # No second holds more than `limit` admitted requests, so neither do the ceil(elapsed) seconds of the run.
    admitted = sent - len(refused)
    assert 1 <= admitted <= limit * math.ceil(elapsed)
    assert len(sandbox.payment_intents()) == admitted  # a refused request created nothing
    assert sandbox.stats()["payments"] == {"received": sent, "rejected": len(refused), "succeeded": admitted}

    # Nothing was saved under a refused key either: sent again once the limit is off, it charges (no replay).
    sandbox.set_fault("payments", rate_limit_per_second=0)
    retried = client.v1.payment_intents.create(VISA, {"idempotency_key": refused[0]})
    assert retried.status == "succeeded"
    assert len(sandbox.payment_intents()) == admitted + 1


def test_stats_split_received_into_rejected_and_succeeded(
    sandbox: SandboxProcess, client: stripe.StripeClient
):
    client.v1.payment_intents.create(VISA)
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create({**VISA, "payment_method": "pm_card_chargeDeclined"})
    assert sandbox.stats() == {
        "payments": {"received": 2, "rejected": 0, "succeeded": 1},
        "carrier": {"received": 0, "rejected": 0, "succeeded": 0},
        "mail": {"received": 0, "rejected": 0, "succeeded": 0},
    }


def test_faults_are_validated_listed_and_cleared(sandbox: SandboxProcess):
    for service, fields in [
        ("billing", {"outage": True}),
        ("payments", {"outages": True}),
        ("payments", {"outage": "yes"}),
        ("payments", {"latency_ms": 1.5}),
        ("payments", {"error_rate": 2}),
        ("payments", {"reject_registrations": True}),
        ("payments", {"rate_limit_per_second": -1}),
        ("payments", {"rate_limit_per_second": 2.5}),
        ("carrier", {"rate_limit_per_second": 5}),
        ("webhooks", {"duplicate": -1}),
    ]:
        with pytest.raises(SandboxError, match="HTTP 400"):
            sandbox.set_fault(service, **fields)

    assert (
        sandbox.set_fault("carrier", latency_ms=5, reject_registrations=True)["reject_registrations"] is True
    )
    sandbox.set_fault("webhooks", duplicate=2, shuffle=True)
    faults = sandbox.faults()
    assert set(faults) == {"payments", "carrier", "mail", "webhooks"}
    assert faults["carrier"] == {
        "outage": False,
        "latency_ms": 5,
        "error_rate": 0.0,
        "drop_after_commit": False,
        "reject_registrations": True,
    }
    assert faults["webhooks"] == {"outage": False, "duplicate": 2, "shuffle": True}

    sandbox.clear_faults()
    assert sandbox.faults()["carrier"]["latency_ms"] == 0
    sandbox.set_fault("mail", outage=True)
    sandbox.reset()
    assert sandbox.faults()["mail"]["outage"] is False


def test_control_api_basics(sandbox: SandboxProcess):
    assert sandbox.request("GET", "/_sandbox/health") == {"ok": True}
    with pytest.raises(SandboxError, match="HTTP 404"):
        sandbox.request("GET", "/_sandbox/nothing-here")
    with pytest.raises(SandboxError, match="HTTP 400"):
        sandbox.set_webhook("ftp://127.0.0.1/hooks", "whsec_x")
