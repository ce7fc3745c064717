"""Signed webhook delivery to a local receiver, with retries and the webhook faults."""

from __future__ import annotations

import json
import queue
import time
from typing import TYPE_CHECKING

import pytest
import stripe

from sandbox.testing import SandboxProcess

if TYPE_CHECKING:
    from tests.sandbox.conftest import Receiver

SECRET = "whsec_test_sandbox"
VISA = {"amount": 1200, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}


def wait_for_deliveries(sandbox: SandboxProcess, count: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(deliveries := sandbox.webhook_deliveries()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return deliveries


def test_events_are_delivered_signed(
    sandbox: SandboxProcess, client: stripe.StripeClient, receiver: Receiver
):
    sandbox.set_webhook(receiver.url, SECRET)
    assert sandbox.request("GET", "/_sandbox/webhooks") == {"url": receiver.url, "secret": SECRET}
    intent = client.v1.payment_intents.create(VISA)

    [(payload, signature)] = receiver.take(1)
    event = stripe.Webhook.construct_event(payload.decode(), signature, SECRET)
    assert event.type == "payment_intent.succeeded" and event.data.object.id == intent.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.decode(), signature, "whsec_wrong")

    [delivery] = wait_for_deliveries(sandbox, 1)
    assert (delivery["event_id"], delivery["status_code"], delivery["attempt"]) == (event.id, 200, 1)


def test_failed_deliveries_are_retried(
    sandbox: SandboxProcess, client: stripe.StripeClient, receiver: Receiver
):
    receiver.statuses = [500]
    sandbox.set_webhook(receiver.url, SECRET)
    client.v1.payment_intents.create(VISA)

    first, second = receiver.take(2)
    assert first[0] == second[0]
    deliveries = wait_for_deliveries(sandbox, 2)
    assert [(d["status_code"], d["attempt"]) for d in deliveries] == [(500, 1), (200, 2)]


def test_duplicate_fault_sends_extra_copies(
    sandbox: SandboxProcess, client: stripe.StripeClient, receiver: Receiver
):
    sandbox.set_fault("webhooks", duplicate=2)
    sandbox.set_webhook(receiver.url, SECRET)
    intent = client.v1.payment_intents.create(VISA)

    copies = receiver.take(3)
    assert {json.loads(body)["data"]["object"]["id"] for body, _ in copies} == {intent.id}
    with pytest.raises(queue.Empty):
        receiver.received.get(timeout=0.3)
    assert [d["status_code"] for d in wait_for_deliveries(sandbox, 3)] == [200, 200, 200]


def test_shuffle_fault_delivers_a_batch_out_of_order(
    sandbox: SandboxProcess, client: stripe.StripeClient, receiver: Receiver
):
    sandbox.set_fault("webhooks", shuffle=True)
    sandbox.set_webhook(receiver.url, SECRET)
    created = [client.v1.payment_intents.create(VISA).id for _ in range(3)]

    delivered = [json.loads(body)["data"]["object"]["id"] for body, _ in receiver.take(3)]
    assert sorted(delivered) == sorted(created) and delivered != created
    assert len(wait_for_deliveries(sandbox, 3)) == 3


def test_outage_fault_drops_deliveries(
    sandbox: SandboxProcess, client: stripe.StripeClient, receiver: Receiver
):
    sandbox.set_fault("webhooks", outage=True)
    sandbox.set_webhook(receiver.url, SECRET)
    client.v1.payment_intents.create(VISA)

    [dropped] = wait_for_deliveries(sandbox, 1)
    assert dropped["status_code"] is None and "outage" in dropped["error"]
    assert receiver.received.empty()
