"""One classification of outside errors (jobkit/outside.py) for the gateway, the carrier and mail:
a busy answer is retried without blaming the service, a refusal is a dead letter at once, a timeout is
an outage the breaker counts, and outside text always fits our columns."""

from __future__ import annotations

import json

import pytest

from billing.models import PaymentAttempt
from jobkit.breaker import breaker_for
from jobkit.models import JobRun
from orders.models import Order
from subscriptions import jobs as subscription_jobs
from subscriptions.models import Subscription
from tests.e2e.test_subscriptions import sign_up, wait_for_subscription
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def place_order(client, payment_method: str = "pm_card_visa") -> str:
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = payment_method
    return client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]


def test_a_carrier_409_for_a_key_in_flight_is_deferred_and_never_compensates(client, workers, plans):
    """Two deliveries of register_delivery at once: the carrier answers the second 409 (same key in
    flight). That is a busy service, not a refusal: deferred (no retry spent), and the healthy sign-up is
    never refunded."""
    [standard] = workers.workers
    workers.stop_worker(standard)
    subscription_id = sign_up(client, key="racing-registrations").json()["id"]
    charger = workers.add_worker("charger", queues=("billing",))
    wait_for(
        lambda: Subscription.objects.filter(public_id=subscription_id, step="register_delivery").exists(),
        30,
        workers.logs,
    )
    workers.stop_worker(charger)
    subscription_jobs.register_delivery.delay(subscription_id)  # a redelivered duplicate
    workers.sandbox.set_fault("carrier", latency_ms=2000)  # both calls are in flight together
    workers.add_worker("external", queues=("external",))  # two pool processes: both jobs at once
    wait_for(
        lambda: JobRun.objects.filter(
            name="subscriptions.register_delivery", last_error__icontains="Idempotency-Key is in flight"
        ).exists(),
        30,
        workers.logs,
    )  # one of them met the 409
    workers.sandbox.set_fault("carrier", latency_ms=0)
    workers.add_worker("the-rest")
    wait_for_subscription(workers, subscription_id, "active", timeout=60)

    assert workers.sandbox.refunds() == []
    assert [r["reference"] for r in workers.sandbox.registrations()] == [subscription_id]
    assert not JobRun.objects.filter(status="dead").exists()
    assert not JobRun.objects.filter(name="subscriptions.register_delivery", retries__gte=1).exists()
    assert breaker_for("carrier").snapshot()["failures"] == 0  # busy is not an outage


def test_a_mail_refusal_is_a_dead_letter_at_once(client, e2e, catalogue, wait_for_order):
    e2e.sandbox.set_fault("mail", reject_recipients=True)  # SMTP 550 on RCPT
    order_id = place_order(client)
    confirmation = JobRun.objects.filter(name="orders.send_order_confirmation")
    dead = wait_for(lambda: confirmation.filter(status="dead").first(), 30, e2e.logs)
    assert dead.attempts == 1 and dead.retries == 0  # no retries for a permanent refusal
    assert "550" in dead.last_error
    assert Order.objects.get(public_id=order_id).status == "paid"
    assert breaker_for("mail").snapshot()["state"] == "closed"  # a refusal says nothing of an outage


def test_a_mail_outage_opens_the_mail_breaker_and_calls_stay_within_its_budget(
    client, workers, catalogue, wait_for_order
):
    workers.add_worker("second-worker")
    breaker = breaker_for("mail")
    workers.sandbox.set_fault("mail", outage=True)  # 421 at connect
    order_ids = [place_order(client) for _ in range(8)]  # 16 emails
    wait_for(lambda: breaker.snapshot()["state"] != "closed", 60, lambda: str(breaker.snapshot()))
    wait_for(lambda: len(half_opened(breaker)) >= 2, 60, lambda: str(breaker.transitions(50)))

    # SMTP connections that reached the down server: the threshold, plus one probe per half-open period
    calls = workers.sandbox.stats()["mail"]["received"]
    assert calls <= 5 + len(half_opened(breaker))
    workers.sandbox.set_fault("mail", outage=False)
    for order_id in order_ids:
        wait_for_order(order_id, "completed", timeout=90)
    assert len(workers.sandbox.mail_messages()) == 16


def half_opened(breaker) -> list[dict]:
    return [t for t in breaker.transitions(100) if t["to"] == "half_open"]


def test_a_hung_gateway_times_out_as_an_outage_and_the_retry_charges_once(
    client, workers, catalogue, wait_for_order
):
    [standard] = workers.workers
    workers.stop_worker(standard)
    workers.add_worker("impatient-worker", STRIPE_TIMEOUT_SECONDS="1")
    workers.sandbox.set_fault("payments", latency_ms=4000)
    order_id = place_order(client)
    charge = JobRun.objects.filter(name="orders.charge_order")
    # the first call times out (the gateway answers after 4 s); its retry may meet the 409 of that same
    # request, still in flight at the gateway, and waits for it to end without spending retries
    # read the row once: its retry can start (and change its status) between two reads
    timed_out = charge.filter(status="retrying", last_error__icontains="timed out")
    first_timeout = wait_for(timed_out.first, 30, workers.logs)
    assert "unreachable" in first_timeout.last_error
    assert breaker_for("payments").snapshot()["failures"] >= 1  # a timeout counts as an outage

    workers.sandbox.set_fault("payments", latency_ms=0)
    wait_for_order(order_id, "completed", timeout=60)
    [intent] = workers.sandbox.payment_intents()  # the timed-out request and its retries: one charge
    assert intent["status"] == "succeeded"


def test_a_gateway_message_longer_than_our_column_is_cut_to_fit(client, workers, catalogue, wait_for_order):
    [standard] = workers.workers
    workers.stop_worker(standard)
    order_id = place_order(client)
    # the issuer's decline message is ~450 characters; our columns hold 300 and 200
    Order.objects.filter(public_id=order_id).update(payment_method="pm_card_sandboxDeclinedVerbose")
    workers.add_worker("standard-again")
    order = wait_for_order(order_id, "payment_failed")
    [intent] = workers.sandbox.payment_intents()
    message = intent["last_payment_error"]["message"]
    assert len(message) > 300
    assert order.status_reason == message[:199] + "…"
    attempt = PaymentAttempt.objects.get()
    assert attempt.failure_message == message[:299] + "…"
    assert not JobRun.objects.filter(status__in=["dead", "retrying"]).exists()
