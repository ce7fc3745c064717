"""The database is the source of truth: the recovery sweep (jobkit/recovery.py), run by beat, moves on
every subject whose job messages were lost, leaves alone subjects whose job is alive or dead, and sends
messages the broker could not take at commit time.

Messages are lost here the way a Redis restart loses them: deleted from the broker's queue lists and
its unacknowledged-message hash.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from django.core.management import CommandError, call_command

from billing import payments as billing
from jobkit.breaker import breaker_for
from jobkit.models import JobExecution, JobRun
from orders.models import Order
from subscriptions.models import Subscription
from tests.e2e.test_subscriptions import intents_for, sign_up, wait_for_subscription
from tests.harness import broker_unreachable, wait_for

pytestmark = pytest.mark.e2e

# The recovering worker treats a subject unchanged for 3 s as stuck (the suite's stack says 15 s).
RECOVERING = {"SWEEP_STUCK_AFTER_SECONDS": "3"}


def place_order(client, payment_method: str = "pm_card_visa") -> str:
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = payment_method
    response = client.post("/api/orders", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def lose_messages(stack, *keys: str) -> None:
    """Delete queue lists (or the unacked hash) from the broker, as a restart without persistence would."""
    assert redis.Redis.from_url(stack.broker_url).delete(*keys)


def sweeps() -> list[dict]:
    """The results of recovery sweeps that ran, in order."""
    done = JobExecution.objects.filter(key__startswith="recovery:").order_by("id")
    return [execution.result for execution in done if execution.result]


def test_lost_messages_of_orders_in_every_in_flight_status_are_recovered_by_beat(
    client, workers, catalogue, wait_for_order
):
    [standard] = workers.workers
    workers.stop_worker(standard)
    placed = place_order(client)
    lose_messages(workers, "default")  # reserve_stock lost: the order stays `placed`

    processing = place_order(client)
    stage = workers.add_worker("default-only", queues=("default",))
    wait_for_order(processing, "processing")
    workers.stop_worker(stage)
    lose_messages(workers, "billing")  # charge_order lost: `processing`

    paid = place_order(client)
    stage = workers.add_worker("no-follow-ups", queues=("default", "billing"))
    wait_for_order(paid, "paid")
    workers.stop_worker(stage)
    lose_messages(workers, "documents", "mailers", "external")  # the fan-out lost: `paid`

    workers.add_worker("recovering-worker", **RECOVERING)
    workers.add_beat("beat")
    for order_id in (placed, processing, paid):
        wait_for_order(order_id, "completed", timeout=60)

    charged = [pi["metadata"]["order_id"] for pi in workers.sandbox.payment_intents()]
    assert sorted(charged) == sorted([placed, processing, paid])
    assert len(workers.sandbox.shipments()) == 3
    assert len({m["message_id"] for m in workers.sandbox.mail_messages()}) == 6  # 2 emails x 3 orders
    assert len(workers.sandbox.mail_messages()) == 6
    lost = JobRun.objects.filter(status="requeued")
    assert sorted(run.name for run in lost) == [
        "orders.charge_order",
        "orders.request_shipment",
        "orders.reserve_stock",
        "orders.send_order_confirmation",
        "orders.store_invoice_pdf",
    ]
    assert all("recovery sweep" in run.last_error for run in lost)
    requeued = [s for result in sweeps() for s in result["requeued"]["orders"]]
    assert sorted(requeued) == sorted(f"order:{o}" for o in (placed, processing, paid))


def test_a_lost_sign_up_and_a_refund_in_flight_are_recovered(client, workers, plans):
    [standard] = workers.workers
    workers.stop_worker(standard)
    pending = sign_up(client, key="lost-sign-up").json()["id"]
    lose_messages(workers, "billing")  # its charge job is lost: `pending` forever, without the sweep

    workers.sandbox.set_fault("carrier", reject_registrations=True)
    crashing, crashed = workers.add_crashing_worker("after_gateway_refund")
    compensating = sign_up(client, key="refund-in-flight").json()["id"]
    wait_for(crashed.exists, 60, workers.logs)  # refunded at the gateway; the worker died before recording
    wait_for(lambda: not crashing.alive(), 10, workers.logs)
    lose_messages(workers, "unacked", "unacked_index")  # and its compensation message is lost too
    workers.sandbox.set_fault("carrier", reject_registrations=False)
    assert Subscription.objects.get(public_id=compensating).status == "compensating"

    workers.add_worker("recovering-worker", **RECOVERING)
    workers.add_beat("beat")
    active = wait_for_subscription(workers, pending, "active", timeout=60)
    failed = wait_for_subscription(workers, compensating, "failed", timeout=60)

    assert len(intents_for(workers, pending)) == 1
    [intent] = intents_for(workers, compensating)
    [refund] = workers.sandbox.refunds()  # one refund, of the full amount, although it was sent twice
    assert (refund["payment_intent"], refund["amount"]) == (intent["id"], intent["amount"])
    assert failed.periods.get().invoice.attempts.get().refund.gateway_reference == refund["id"]
    assert [r["reference"] for r in workers.sandbox.registrations()] == [str(active.public_id)]
    subjects = sorted(m["subject"] for m in wait_for(lambda: _two_mails(workers), 30, workers.logs))
    assert subjects == ["Welcome to Coffee of the month", "Your Coffee of the month sign-up was refunded"]


def _two_mails(stack) -> list[dict] | None:
    mails = stack.sandbox.mail_messages()
    return mails if len(mails) >= 2 else None


def test_a_lost_job_of_a_subject_that_moved_on_is_sent_again_and_ends(
    client, workers, catalogue, wait_for_order
):
    """Found by the fault campaign (`make chaos`): a worker dies right after the gateway charged, the
    broker loses its message, and the payment reaches the shop by its webhook instead, so the order
    completes without the charge job. No finder looks at a completed order, yet the job's timeline row
    must not stay `started` forever: the sweep sends the lost job again, which finds the order paid."""
    [standard] = workers.workers
    workers.stop_worker(standard)
    crashing, crashed = workers.add_crashing_worker("after_gateway_charge")
    order_id = place_order(client)
    wait_for(crashed.exists, 60, workers.logs)  # charged at the gateway; the worker died before recording
    wait_for(lambda: not crashing.alive(), 10, workers.logs)
    workers.stop_worker(crashing)
    lose_messages(workers, "unacked", "unacked_index")  # a broker restart: the charge message is gone
    workers.add_worker("recovering-worker", **RECOVERING)
    [intent] = workers.sandbox.payment_intents()
    billing.reconcile_payment_intent(intent)  # what the payment_intent.succeeded webhook does
    wait_for_order(order_id, "completed", timeout=60)
    charge = JobRun.objects.filter(name="orders.charge_order")
    assert charge.get().status == "started"  # as the dead worker left it

    workers.add_beat("beat")  # its sweeps find no order in flight, and the charge job's row alone
    wait_for(
        lambda: charge.filter(status="succeeded").exists(), 30, lambda: f"{charge.get()}\n{workers.logs()}"
    )
    assert charge.get().attempts == 2  # the same job, sent again: not a copy
    assert len(workers.sandbox.payment_intents()) == 1


def test_a_job_waiting_in_the_broker_is_alive_however_old(client, workers, catalogue, wait_for_order):
    """A charge deferred behind an open breaker sits in the broker for the whole cooldown, its timeline
    row unchanged: alive, not lost."""
    [standard] = workers.workers
    workers.stop_worker(standard)
    breaker = breaker_for("payments")
    for _ in range(5):  # the gateway has been failing for others: the breaker is open
        breaker.record_failure(breaker.admit())
    # a cooldown longer than the stack's 10 s visibility timeout needs a longer one (shop/settings.py
    # refuses a countdown past it: Redis would hand the deferred message out again, kombu issue 337)
    workers.add_worker(
        "recovering-worker", BREAKER_COOLDOWN_SECONDS="12", CELERY_VISIBILITY_TIMEOUT="20", **RECOVERING
    )
    workers.add_beat("beat")
    order_id = place_order(client)
    charge = JobRun.objects.filter(name="orders.charge_order")
    wait_for(lambda: charge.filter(status="retrying").exists(), 30, workers.logs)

    # two sweeps run while the deferred job's row and the order are older than the 3 s cutoff
    stale_from = charge.get().updated_at + timedelta(seconds=4)
    later = JobExecution.objects.filter(key__startswith="recovery:", created_at__gt=stale_from)
    wait_for(lambda: later.count() >= 2, 30, workers.logs)
    assert Order.objects.get(public_id=order_id).status == "processing"
    assert not JobRun.objects.filter(status="requeued").exists()
    assert charge.count() == 1
    wait_for_order(order_id, "completed", timeout=60)  # the cooldown ends, the deferred job charges
    assert len(workers.sandbox.payment_intents()) == 1


def test_a_subject_whose_latest_job_is_dead_waits_for_a_human(client, workers, catalogue, wait_for_order):
    [standard] = workers.workers
    workers.stop_worker(standard)
    workers.add_worker(
        "broken-template-worker", INVOICE_PDF_TEMPLATE="billing/no-such-invoice.html", **RECOVERING
    )
    workers.add_beat("beat")
    order_id = place_order(client)
    render = JobRun.objects.filter(name="orders.store_invoice_pdf")
    wait_for(lambda: render.filter(status="dead").exists(), 30, workers.logs)
    died = render.get().finished_at

    def sweeps_since_death() -> list[dict]:
        after = died + timedelta(seconds=4)
        done = JobExecution.objects.filter(key__startswith="recovery:", created_at__gt=after)
        return [e.result for e in done if e.result] if done.count() >= 2 else []

    results = wait_for(sweeps_since_death, 30, workers.logs)
    assert all(f"order:{order_id}" in r["waiting_for_human"] for r in results)
    assert render.count() == 1 and render.get().attempts == 1  # never re-run by the sweep
    assert Order.objects.get(public_id=order_id).status == "paid"


def test_checkout_with_the_broker_down_answers_202_and_the_sweep_sends_the_job(
    client, workers, catalogue, wait_for_order
):
    with broker_unreachable():
        order_id = place_order(client)
    run = JobRun.objects.get(name="orders.reserve_stock")
    assert run.status == "unsent" and "not sent" in run.last_error
    assert Order.objects.get(public_id=order_id).status == "placed"

    workers.add_beat("beat")  # the broker is back: the next sweep sends the recorded message
    wait_for_order(order_id, "completed", timeout=60)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempts == 1  # the same job, sent late: not a copy
    assert JobRun.objects.filter(name="orders.reserve_stock").count() == 1
    assert len(workers.sandbox.payment_intents()) == 1


def test_recover_command_refuses_a_negative_age(db):
    with pytest.raises(CommandError, match="--older-than"):
        call_command("recover", older_than=-1)
