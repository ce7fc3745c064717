"""Pattern 6: one breaker per outside service, shared by every worker process."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model

from jobkit import dead_letters
from jobkit.breaker import breaker_for
from jobkit.models import JobRun
from orders import jobs
from orders.models import Order
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

ORDERS = 40
THRESHOLD = 5  # BREAKER_FAILURE_THRESHOLD's default, which the test stack keeps


def test_gateway_outage_with_four_worker_processes(client, workers, catalogue):
    workers.add_worker("second-worker")  # 2 workers x 2 pool processes
    breaker = breaker_for("payments")
    workers.sandbox.set_fault("payments", outage=True)
    body = {
        "email": "ada@example.com",
        "items": [{"sku": "TEA-EARL", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
    order_ids = [
        client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]
        for _ in range(ORDERS)
    ]
    charge_jobs = JobRun.objects.filter(name="orders.charge_order")
    wait_for(lambda: charge_jobs.count() == ORDERS, 30, workers.logs)
    wait_for(lambda: breaker.snapshot()["state"] == "open", 30, lambda: str(breaker.snapshot()))
    # every charge job has run at least once: the first ones failed, the rest were turned away by the breaker
    wait_for(lambda: not charge_jobs.filter(attempts=0).exists(), 30, workers.logs)
    # Two cooldowns, and open again: the last half-open period's probe has been made and has failed (read
    # while half-open, its probe may not have reached the gateway yet). The next cooldown is 2 s away.
    wait_for(
        lambda: len(half_opened(breaker)) >= 2 and breaker.snapshot()["state"] == "open",
        30,
        lambda: str(breaker.transitions(50)),
    )

    # Gateway calls: the threshold, plus one probe per half-open period. Not threshold x processes.
    probes = len(half_opened(breaker))
    calls = workers.sandbox.stats()["payments"]["received"]
    assert THRESHOLD <= calls <= THRESHOLD + probes
    # A retry is spent only per call that met the failing gateway while the breaker was closed (the last
    # may still be in flight); a failed probe spent none, nor did the jobs the breaker turned away.
    spent = list(charge_jobs.values_list("retries", flat=True))
    assert calls - probes - 1 <= sum(spent) <= calls - probes
    assert spent.count(0) >= ORDERS - calls
    assert charge_jobs.filter(status="dead").count() == 0
    # half-open admits a single probe: every half-open period ends before the next begins
    sequence = [(t["from"], t["to"]) for t in reversed(breaker.transitions(100))]
    assert sequence[0] == ("closed", "open")
    for step in sequence[1:]:
        assert step in {("open", "half_open"), ("half_open", "open"), ("half_open", "closed")}

    # staff see the open breaker on the ops page and end the outage from there
    client.force_login(get_user_model().objects.create_superuser("staff", "staff@example.com", "test-only"))
    ops = client.get("/ops/").content.decode().replace("\n", "")
    # open, or half-open between two probes; never closed while the gateway is down
    payments_row = r"<td>payments</td><td><span class=\"status (dead|retrying)\">(open|half_open)</span>"
    assert re.search(payments_row, ops)
    client.post("/ops/", {"service": "payments", "outage": "off"})
    assert workers.sandbox.faults()["payments"]["outage"] is False
    completed = Order.objects.filter(public_id__in=order_ids, status="completed")
    wait_for(lambda: completed.count() == ORDERS, 120, lambda: str(breaker.snapshot()) + workers.logs())
    charged = [pi for pi in workers.sandbox.payment_intents() if pi["status"] == "succeeded"]
    assert sorted(pi["metadata"]["order_id"] for pi in charged) == sorted(order_ids)
    assert breaker.snapshot()["state"] == "closed"


def half_opened(breaker) -> list[dict]:
    return [t for t in breaker.transitions(100) if t["to"] == "half_open"]


def test_a_job_deferred_past_the_deadline_goes_to_dead_letters(client, workers, catalogue, wait_for_order):
    [standard] = workers.workers
    workers.stop_worker(standard)
    workers.add_worker("short-deadline-worker", JOB_DEFER_DEADLINE_SECONDS="3")
    breaker = breaker_for("payments")
    workers.sandbox.set_fault("payments", outage=True)
    for _ in range(THRESHOLD):  # the gateway has been failing for others: the breaker is open
        breaker.record_failure(breaker.admit())
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = "pm_card_visa"
    order_id = client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]

    charge = wait_for(
        lambda: JobRun.objects.filter(name="orders.charge_order", status="dead").first(), 30, workers.logs
    )
    # dead of the deferral deadline, not of an exhausted retry budget (only failed probes spent retries)
    assert "still deferred" in charge.last_error and "circuit 'payments'" in charge.last_error
    assert charge.retries < jobs.charge_order.max_retries
    assert Order.objects.get(public_id=order_id).status == "processing"

    workers.sandbox.set_fault("payments", outage=False)
    breaker.reset()
    dead_letters.requeue([charge])
    wait_for_order(order_id, "completed")


def test_a_job_alone_through_a_long_outage_waits_for_it_to_end(client, e2e, catalogue, wait_for_order):
    """Found by the fault campaign (`make chaos`): with no other traffic, the one job takes every half-open
    probe. A failed probe tells the breaker the outage goes on; it must not spend the job's retries, or
    the job dies a few cooldowns into an outage instead of waiting for it (JOB_DEFER_DEADLINE_SECONDS)."""
    breaker = breaker_for("payments")
    e2e.sandbox.set_fault("payments", outage=True)
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = "pm_card_visa"
    order_id = client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]
    charge = JobRun.objects.filter(name="orders.charge_order")

    # more probes than the job has retries (its first THRESHOLD failures, which opened the breaker, spent
    # as many retries)
    probes = jobs.charge_order.max_retries + 2
    wait_for(lambda: len(half_opened(breaker)) >= probes, 60, lambda: f"{charge.first()}\n{e2e.logs()}")
    assert charge.get().status != "dead", charge.get().last_error
    e2e.sandbox.set_fault("payments", outage=False)
    wait_for_order(order_id, "completed", timeout=60)
    assert charge.get().retries <= THRESHOLD  # spent by the calls that met the gateway while closed
    assert len(e2e.sandbox.payment_intents()) == 1
