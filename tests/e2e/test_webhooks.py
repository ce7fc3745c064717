"""Stripe webhooks end to end: the sandbox signs every PaymentIntent outcome and refund and posts it over
HTTP to the shop (a live server on the test database), while a real worker charges the same orders.

Whichever side learns of a payment first records it and the other finds it recorded; every event is
stored once, however often and in whatever order it arrives.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from billing import payments as billing
from billing.models import Invoice, PaymentAttempt, Refund, StripeEvent
from devstack import processes
from jobkit.models import JobRun
from notifications.models import Notification, Reminder
from orders.models import Order
from shipping.models import Shipment
from shop.celery import QUEUES
from tests.conftest import STANDARD_WORKER
from tests.harness import Stack, wait_for

pytestmark = pytest.mark.e2e

FOLLOW_UPS = [
    "orders.request_shipment",
    "orders.send_invoice_email",
    "orders.send_order_confirmation",
    "orders.store_invoice_pdf",
]
PAID_JOBS = sorted(["orders.reserve_stock", "orders.charge_order", *FOLLOW_UPS])


@pytest.fixture
def webhook_url(e2e: Stack, live_server) -> Iterator[str]:
    """The sandbox sends its signed webhooks to this test's live server; afterwards to nobody."""
    url = f"{live_server.url}/webhooks/stripe"
    e2e.sandbox.set_webhook(url, settings.STRIPE_WEBHOOK_SECRET)
    yield url
    # A sandbox reset keeps the target: without this, later tests' events would post to a dead server.
    e2e.sandbox.set_webhook(None, None)


def place(client, email: str, payment_method: str = "pm_card_visa") -> str:
    body = {"email": email, "items": [{"sku": "TEA-EARL", "quantity": 1}], "payment_method": payment_method}
    response = client.post("/api/orders", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 202
    return response.json()["id"]


def intents_for(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    return [pi for pi in stack.sandbox.payment_intents() if pi["metadata"].get("order_id") == order_id]


def wait_for_idle_jobs(stack: Stack, *order_ids: str) -> None:
    """Wait until no job of these orders is queued or running, so a snapshot cannot catch one mid-flight."""
    live = JobRun.objects.filter(
        subject__in=[f"order:{order_id}" for order_id in order_ids], status__in=JobRun.LIVE_STATUSES
    )
    wait_for(lambda: not live.exists(), 30, stack.logs)


def wait_for_deliveries(stack: Stack, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """The sandbox's log of webhook delivery attempts, oldest first, once `done` says it is complete."""

    def check() -> list[dict[str, Any]] | None:
        found = stack.sandbox.webhook_deliveries()
        return found if done(found) else None

    return wait_for(check, 30, lambda: f"webhook deliveries: {stack.sandbox.webhook_deliveries()}")


def footprint(order_id: str) -> dict[str, Any]:
    """Every row a settled payment leads to for one order, to compare before and after a webhook."""
    subject = f"order:{order_id}"
    return {
        "order": list(
            Order.objects.filter(public_id=order_id).values("status", "status_reason", "updated_at")
        ),
        "invoice": list(Invoice.objects.filter(owner=f"order:{order_id}").values("status", "paid_at", "pdf")),
        "attempts": list(
            PaymentAttempt.objects.filter(invoice__owner=f"order:{order_id}").values(
                "pk", "status", "gateway_reference", "completed_at"
            )
        ),
        "jobs": sorted(
            JobRun.objects.filter(subject=subject).values_list("task_id", "name", "status", "attempts")
        ),
        "notifications": sorted(
            Notification.objects.filter(subject=subject).values_list("kind", "status", "sent_at")
        ),
        "reminders": sorted(Reminder.objects.filter(subject=subject).values_list("sequence", "status")),
        "shipments": list(Shipment.objects.filter(reference=order_id).values_list("carrier_reference")),
    }


def without_charge_job(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "jobs": [job for job in state["jobs"] if job[1] != "orders.charge_order"]}


def test_a_webhook_after_the_job_recorded_the_payment_is_stored_and_changes_nothing(
    client, e2e, catalogue, webhook_url, wait_for_order
):
    # The shop's endpoint is unreachable at first, so the sandbox retries the event as Stripe would; it gets
    # through only after the job path has recorded the payment and finished the order.
    unreachable = f"http://{processes.HOST}:{processes.free_port()}/webhooks/stripe"
    e2e.sandbox.set_webhook(unreachable, settings.STRIPE_WEBHOOK_SECRET)
    order_id = place(client, "ada@example.com")
    wait_for_order(order_id, "completed")
    wait_for_idle_jobs(e2e, order_id)
    recorded_by_the_job = footprint(order_id)
    assert not StripeEvent.objects.exists()

    e2e.sandbox.set_webhook(webhook_url, settings.STRIPE_WEBHOOK_SECRET)
    deliveries = wait_for_deliveries(e2e, lambda found: any(d["status_code"] == 200 for d in found))
    [intent] = intents_for(e2e, order_id)
    [event] = StripeEvent.objects.all()
    assert {d["event_id"] for d in deliveries} == {event.event_id}
    assert deliveries[0]["status_code"] is None  # the held-back first attempt
    assert [d["status_code"] for d in deliveries].count(200) == 1
    assert (event.type, event.payload["data"]["object"]["id"]) == ("payment_intent.succeeded", intent["id"])
    assert event.processed_at is not None
    assert footprint(order_id) == recorded_by_the_job
    [attempt] = recorded_by_the_job["attempts"]
    assert (attempt["status"], attempt["gateway_reference"]) == ("succeeded", intent["id"])
    assert attempt["completed_at"] < event.received_at  # the job recorded it, before the webhook came
    assert sorted(name for _, name, _, _ in recorded_by_the_job["jobs"]) == PAID_JOBS
    assert e2e.sandbox.stats()["payments"]["received"] == 1


def test_duplicated_and_shuffled_webhooks_are_stored_once_and_settle_nothing_twice(
    client, e2e, catalogue, webhook_url, wait_for_order
):
    copies = 4
    e2e.sandbox.set_fault("webhooks", duplicate=copies - 1, shuffle=True)
    paid = [
        place(client, "paid-0@example.com"),
        place(client, "paid-1@example.com", "pm_card_mastercard"),
        place(client, "paid-2@example.com"),
    ]
    declined = place(client, "declined@example.com", "pm_card_chargeDeclined")
    repaid = place(client, "repaid@example.com", "pm_card_chargeDeclinedInsufficientFunds")
    wait_for_order(repaid, "payment_failed")
    pay_again = client.post(
        f"/api/orders/{repaid}/pay",
        data=json.dumps({"payment_method": "pm_card_visa"}),
        content_type="application/json",
    )
    assert pay_again.status_code == 202
    for order_id in [*paid, repaid]:
        wait_for_order(order_id, "completed")
    wait_for_order(declined, "payment_failed")
    # A refund (what compensation uses) sends charge.refunded through the same storm.
    refund = billing.refund_payment(PaymentAttempt.objects.get(invoice__owner=f"order:{paid[0]}").pk)

    # 3 + 1 + 2 PaymentIntents, one event each, and the refund's event; each delivered `copies` times.
    events = 7
    deliveries = wait_for_deliveries(e2e, lambda found: len(found) >= events * copies)
    wait_for_idle_jobs(e2e, *paid, declined, repaid)

    sequence = [d["event_id"] for d in deliveries]
    assert len(sequence) == events * copies
    assert {d["status_code"] for d in deliveries} == {200}  # duplicates are acknowledged, never retried
    assert set(Counter(sequence).values()) == {copies}
    # Event ids are time-ordered: sorted is the order the sandbox created them in.
    assert sequence != sorted(sequence), "delivered in creation order: the shuffle fault did not reorder"
    stored = list(StripeEvent.objects.all())
    assert sorted(e.event_id for e in stored) == sorted(set(sequence))
    assert all(e.processed_at is not None for e in stored)
    assert Counter(e.type for e in stored) == {
        "payment_intent.succeeded": 4,
        "payment_intent.payment_failed": 2,
        "charge.refunded": 1,
    }

    mails = Counter(recipient for message in e2e.sandbox.mail_messages() for recipient in message["to"])
    shipments = Counter(shipment["reference"] for shipment in e2e.sandbox.shipments())
    reminders = len(settings.REMINDER_OFFSETS_SECONDS)
    for order_id in [*paid, declined, repaid]:
        order = Order.objects.get(public_id=order_id)
        intents = intents_for(e2e, order_id)
        attempts = list(PaymentAttempt.objects.filter(invoice__owner=order.subject))  # oldest first
        # One outcome per attempt, each for its own PaymentIntent, whatever order the events came in.
        assert [(a.gateway_reference, a.status) for a in attempts] == [
            (pi["id"], "succeeded" if pi["status"] == "succeeded" else "failed") for pi in intents
        ]
        jobs = sorted(JobRun.objects.filter(subject=order.subject).values_list("name", "status"))
        planned = list(Reminder.objects.filter(subject=order.subject).values_list("sequence", "status"))
        if order_id == declined:
            assert order.status == "payment_failed"
            assert [pi["status"] for pi in intents] == ["requires_payment_method"]
            assert jobs == [("orders.charge_order", "succeeded"), ("orders.reserve_stock", "succeeded")]
            assert sorted(planned) == [(n, "pending") for n in range(1, reminders + 1)]
            assert mails[order.email] == 0
            continue
        assert order.status == "completed"
        assert [pi["status"] for pi in intents][-1] == "succeeded"
        charges = 2 if order_id == repaid else 1
        assert len(intents) == charges
        assert jobs == sorted(
            (name, "succeeded") for name in [*PAID_JOBS, *["orders.charge_order"] * (charges - 1)]
        )
        # The repaid order's reminders were planned once, at its decline, and skipped when it was paid.
        expected_reminders = [(n, "skipped") for n in range(1, reminders + 1)] if order_id == repaid else []
        assert sorted(planned) == expected_reminders
        assert mails[order.email] == 2  # confirmation and invoice, once each
        assert shipments[order_id] == 1

    refund.refresh_from_db()
    [gateway_refund] = e2e.sandbox.refunds()
    assert (refund.status, refund.gateway_reference) == (Refund.Status.SUCCEEDED, gateway_refund["id"])
    assert gateway_refund["payment_intent"] == intents_for(e2e, paid[0])[0]["id"]


def test_the_webhook_records_the_payment_when_the_charging_worker_died(
    client, workers, catalogue, webhook_url, wait_for_order
):
    [standard] = workers.workers
    workers.stop_worker(standard)
    # The only worker on the billing queue kills itself right after the gateway charged, before recording;
    # it takes nothing else, so the one message it dies holding is the charge (a message a worker has
    # popped but not yet registered as unacknowledged is lost when it is killed: that is the sweeper's job).
    doomed, marker = workers.add_crashing_worker(
        "after_gateway_charge", name="charge-crasher", queues=("billing",), wait=False
    )
    # Every other queue has a worker of its own, so the order can finish with no billing worker alive.
    others = workers.add_worker(
        "no-billing-worker", wait=False, queues=tuple(q for q in QUEUES if q != "billing")
    )
    wait_for(lambda: all("ready." in w.output_tail() for w in (doomed, others)), 60, workers.logs)

    order_id = place(client, "ada@example.com")
    wait_for(lambda: not doomed.alive(), 30, workers.logs)
    assert marker.exists()
    order = wait_for_order(order_id, "completed")

    # The charge job never got to record anything: its message is still held by the dead worker.
    charge_job = JobRun.objects.get(subject=order.subject, name="orders.charge_order")
    assert (charge_job.status, charge_job.attempts) == (JobRun.Status.STARTED, 1)
    [intent] = intents_for(workers, order_id)
    [event] = StripeEvent.objects.all()
    assert (event.type, event.payload["data"]["object"]["id"]) == ("payment_intent.succeeded", intent["id"])
    assert event.processed_at is not None
    [attempt] = PaymentAttempt.objects.filter(invoice__owner=order.subject)
    assert (attempt.status, attempt.gateway_reference) == ("succeeded", intent["id"])
    assert order.invoice.status == "paid"
    follow_up_jobs = JobRun.objects.filter(subject=order.subject, name__in=FOLLOW_UPS)
    wait_for(
        lambda: set(follow_up_jobs.values_list("status", flat=True)) == {JobRun.Status.SUCCEEDED},
        30,
        workers.logs,
    )
    assert sorted(follow_up_jobs.values_list("name", flat=True)) == FOLLOW_UPS
    settled_by_the_webhook = without_charge_job(footprint(order_id))

    # A worker on every queue comes back; the charge message comes back to it after the visibility timeout.
    workers.add_worker(STANDARD_WORKER)
    wait_for(
        lambda: JobRun.objects.filter(pk=charge_job.pk, status=JobRun.Status.SUCCEEDED).exists(),
        40,
        workers.logs,
    )
    assert JobRun.objects.get(pk=charge_job.pk).attempts == 2
    assert workers.sandbox.stats()["payments"]["received"] == 1  # it did not even ask the gateway again
    assert intents_for(workers, order_id) == [intent]
    assert without_charge_job(footprint(order_id)) == settled_by_the_webhook
