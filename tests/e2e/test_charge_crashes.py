"""Pattern 2 under crashes: whatever dies where, the customer is charged once and the invoice paid once."""

from __future__ import annotations

import json

import pytest

from billing.models import Invoice, PaymentAttempt
from orders import jobs
from orders.models import Order
from tests.conftest import STANDARD_WORKER
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def place_order(client) -> str:
    body = {
        "email": "ada@example.com",
        "items": [{"sku": "TEA-EARL", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
    response = client.post("/api/orders", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 202
    return response.json()["id"]


def assert_charged_once(e2e, order_id: str) -> None:
    charges = [pi for pi in e2e.sandbox.payment_intents() if pi["metadata"]["order_id"] == order_id]
    assert [pi["status"] for pi in charges] == ["succeeded"]
    invoice = Invoice.objects.get(owner=f"order:{order_id}")
    assert invoice.status == "paid"
    [attempt] = PaymentAttempt.objects.filter(invoice=invoice)
    assert (attempt.status, attempt.gateway_reference) == ("succeeded", charges[0]["id"])


def test_connection_dropped_after_the_gateway_charged(client, e2e, catalogue, wait_for_order):
    e2e.sandbox.set_fault("payments", drop_after_commit=True)
    order_id = place_order(client)
    # the first call charged but its answer was lost; the job's retry re-sends the same key and gets it
    wait_for_order(order_id, "completed")
    assert_charged_once(e2e, order_id)
    assert e2e.sandbox.stats()["payments"]["received"] >= 2


def test_worker_killed_after_the_charge_before_recording_it(client, workers, catalogue, wait_for_order):
    [standard] = workers.workers
    workers.stop_worker(standard)
    doomed, marker = workers.add_crashing_worker("after_gateway_charge")
    order_id = place_order(client)
    wait_for(lambda: not doomed.alive(), 30, lambda: workers.logs())
    assert marker.exists()
    # the gateway has the charge, the shop has not recorded it
    assert [pi["status"] for pi in workers.sandbox.payment_intents()] == ["succeeded"]
    assert Order.objects.get(public_id=order_id).status == "processing"
    assert PaymentAttempt.objects.get(invoice__owner=f"order:{order_id}").status == "pending"

    workers.stop_worker(doomed)
    workers.add_worker(STANDARD_WORKER)  # the unacknowledged message comes back after the visibility timeout
    wait_for_order(order_id, "completed", timeout=60)
    assert_charged_once(workers, order_id)


def test_racing_charge_jobs_charge_once(client, workers, catalogue, wait_for_order):
    workers.add_worker("second-worker")
    workers.sandbox.set_fault("payments", latency_ms=700)  # keep the calls in flight together
    order_id = place_order(client)
    wait_for_order(order_id, "processing", "paid", "completed")
    for _ in range(4):  # duplicates of the charge job, picked up by 4 pool processes in 2 workers
        jobs.charge_order.delay(order_id)
    wait_for_order(order_id, "completed", timeout=60)
    workers.sandbox.set_fault("payments", latency_ms=0)
    assert_charged_once(workers, order_id)
    # the duplicates really raced: they reached the gateway with the same key while the first was in flight
    assert workers.sandbox.stats()["payments"]["received"] >= 2
