"""Stopping a worker (Ctrl-C in the demo, the harness between tests) lets the jobs it runs finish."""

from __future__ import annotations

import json

import pytest

from jobkit.models import JobRun
from orders.models import Order
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_a_stopped_worker_finishes_the_job_it_is_running(client, workers, catalogue):
    [standard] = workers.workers
    workers.stop_worker(standard)
    worker = workers.add_worker("graceful-stop-worker")
    workers.sandbox.set_fault("carrier", latency_ms=3000)  # the shipment call is in flight at the stop
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = "pm_card_visa"
    order_id = client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]
    shipment = JobRun.objects.filter(
        name="orders.request_shipment", subject=Order.objects.get(public_id=order_id).subject
    )
    wait_for(lambda: shipment.filter(status="started").exists(), 30, workers.logs)

    workers.stop_worker(worker)

    assert shipment.get().status == "succeeded"
    assert [s["reference"] for s in workers.sandbox.shipments()] == [order_id]
    log = worker.log_path.read_text()
    assert "WorkerLostError" not in log
    assert worker.popen.returncode == 0, log
