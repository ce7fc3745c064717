"""Pattern 7's compensation, on the paths a 422 does not take: retries running out on an outage, and a
step failing after the carrier registration exists. (A worker killed mid-compensation, with its message
lost: tests/e2e/test_recovery.py.)"""

from __future__ import annotations

import pytest

from jobkit.models import JobRun
from tests.e2e.test_subscriptions import intents_for, sign_up, wait_for_subscription

pytestmark = pytest.mark.e2e


def test_retries_running_out_on_a_carrier_outage_are_compensated(client, workers, plans):
    [standard] = workers.workers
    workers.stop_worker(standard)
    # A breaker that never opens, so every retry meets the outage and the budget (8) runs out.
    workers.add_worker("no-breaker-worker", BREAKER_FAILURE_THRESHOLD="1000")
    workers.sandbox.set_fault("carrier", outage=True)
    subscription_id = sign_up(client, key="carrier-down").json()["id"]
    failed = wait_for_subscription(workers, subscription_id, "failed", timeout=90)

    register = JobRun.objects.get(name="subscriptions.register_delivery")
    assert register.status == "dead" and register.retries == 8 and "503" in register.last_error
    [intent] = intents_for(workers, subscription_id)
    [refund] = workers.sandbox.refunds()
    assert (refund["payment_intent"], refund["amount"]) == (intent["id"], intent["amount"])
    assert workers.sandbox.registrations() == []
    assert "refunded" in failed.status_reason


def test_a_step_failing_after_the_registration_cancels_it_and_refunds(client, workers, plans):
    [standard] = workers.workers
    workers.stop_worker(standard)
    workers.add_worker("failing-entitlement", SHOP_FAIL_AT="grant_entitlement")
    subscription_id = sign_up(client, key="entitlement-fails").json()["id"]
    failed = wait_for_subscription(workers, subscription_id, "failed", timeout=60)

    grant = JobRun.objects.get(name="subscriptions.grant_entitlement")
    assert grant.status == "dead" and grant.attempts == 1
    [registration] = workers.sandbox.registrations()
    assert registration["reference"] == subscription_id and registration["status"] == "cancelled"
    assert failed.carrier_registration == registration["id"]
    [intent] = intents_for(workers, subscription_id)
    [refund] = workers.sandbox.refunds()
    assert (refund["payment_intent"], refund["amount"]) == (intent["id"], intent["amount"])
