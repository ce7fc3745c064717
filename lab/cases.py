"""The lab's rows: each runs one fault against the naive version and against the shop's code, and counts
what happened at the outside world (the sandbox's records) or in the database. Import after Django setup
(lab/__main__.py does, once the stack runs)."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import redis
from django.conf import settings
from django.db import transaction

from billing.models import PaymentAttempt
from devstack.processes import Child
from jobkit import clock
from jobkit.breaker import SERVICES, breaker_for
from jobkit.ratelimit import reset_limiter
from lab.naive import billing as naive_billing
from lab.naive import breaker as naive_breaker
from lab.naive import chain as naive_chain
from lab.naive import charge as naive_charge
from lab.naive import order as naive_process
from lab.naive import reminders as naive_reminders
from lab.naive import signup as naive_signup
from lab.naive import worker_lost as naive_worker_lost
from lab.naive.app import NAIVE_PREFIX, VISIBILITY_TIMEOUT
from lab.stack import CONCURRENCY, LabStack, wait
from orders.checkout import CartLine, pay_again, place_order, write_order
from orders.models import Order, Product
from shop.factories import ProductFactory, due_subscriptions, seed_plans
from subscriptions.models import BillingRun, Subscription
from subscriptions.renewals import start_run
from subscriptions.signup import sign_up

# Every wait for an outcome ends here: a version that neither finishes nor fails within it is stuck.
SETTLE_SECONDS = 40


@dataclass
class Side:
    outcome: str  # what was measured, in words and counts
    failed: bool  # the fault beat this version
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Row:
    pattern: str
    fault: str
    naive: Side
    shop: Side
    naive_module: str
    shop_file: str

    @property
    def as_expected(self) -> bool:
        return self.naive.failed and not self.shop.failed


# --- shared steps -----------------------------------------------------------------------------------------
def fresh(lab: LabStack) -> None:
    """A clean outside world and closed breakers, nothing of an earlier row left in flight."""
    wait(idle, SETTLE_SECONDS, "the shop's jobs of the previous row to end")
    naive_quiet(lab)
    lab.sandbox.reset()
    for service in SERVICES:
        breaker_for(service).reset()
        reset_limiter(service)


def naive_held(lab: LabStack) -> int:
    """Naive job messages queued, or taken and not acknowledged (retries waiting for their countdown)."""
    state = naive_broker_state(lab)
    return state["queued"] + state["unacked"]


def naive_broker_state(lab: LabStack) -> dict[str, int]:
    """What the broker holds for the naive app, and how long its restore lock lives on (-2: not held)."""
    client = redis.Redis.from_url(lab.redis_url)
    return {
        "queued": client.llen(f"{NAIVE_PREFIX}naive"),
        "unacked": client.hlen(f"{NAIVE_PREFIX}unacked"),
        "restore_lock_ttl": client.ttl(f"{NAIVE_PREFIX}unacked_mutex"),
    }


def naive_quiet(lab: LabStack, for_seconds: float = 1.5) -> None:
    """Wait until the broker has held no naive message for `for_seconds`: with early acks a running job's
    message is gone already, and its retry appears only as the job ends (within a second here)."""
    quiet_since = time.monotonic()
    deadline = quiet_since + SETTLE_SECONDS
    while time.monotonic() - quiet_since < for_seconds:
        if naive_held(lab):
            quiet_since = time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the naive jobs did not end: {naive_broker_state(lab)}")
        time.sleep(0.1)


def idle() -> bool:
    from jobkit.models import JobRun

    return not JobRun.objects.filter(status__in=JobRun.LIVE_STATUSES).exists()


def product() -> Product:
    return ProductFactory(sku="LAB-TEA", name="Lab tea", price=Decimal("12.50"), stock=1_000_000)


def naive_order() -> Order:
    """An order and its invoice written as the shop's checkout writes them, but no job of the shop's."""
    with transaction.atomic():
        return write_order(
            email="naive@example.com", lines=[CartLine(product(), 1)], payment_method="pm_card_visa"
        )


def shop_order(payment_method: str = "pm_card_visa") -> Order:
    with transaction.atomic():
        return place_order(
            email="shop@example.com", lines=[CartLine(product(), 1)], payment_method=payment_method
        )


def charges(lab: LabStack, orders: list[Order] | None = None) -> int:
    """Succeeded PaymentIntents at the gateway: all of them, or those of these orders (the shop's name the
    invoice in their metadata, the naive versions' the order)."""
    keys: set[str] | None = None
    if orders is not None:
        fresh_orders = Order.objects.filter(pk__in=[o.pk for o in orders]).select_related("invoice")
        keys = {str(o.public_id) for o in fresh_orders} | {o.invoice.number for o in fresh_orders}
    return sum(
        intent["status"] == "succeeded" and (keys is None or bool(keys & set(intent["metadata"].values())))
        for intent in lab.sandbox.payment_intents()
    )


def reminders_sent(lab: LabStack) -> int:
    return sum(message["subject"].startswith("Reminder") for message in lab.sandbox.mail_messages())


def gateway_calls(lab: LabStack) -> int:
    return lab.sandbox.stats()["payments"]["received"]


def settled(orders: list[Order], *statuses: str) -> Callable[[], bool]:
    ids = [order.pk for order in orders]
    return lambda: Order.objects.filter(pk__in=ids, status__in=statuses).count() == len(ids)


def count(orders: list[Order], *statuses: str) -> int:
    return Order.objects.filter(pk__in=[o.pk for o in orders], status__in=statuses).count()


def shipments(lab: LabStack, order: Order) -> int:
    """Shipments the carrier registered for this order (the shop's and the naive versions' name it)."""
    return sum(shipment["reference"] == str(order.public_id) for shipment in lab.sandbox.shipments())


def emails_to(lab: LabStack, order: Order, subject: str) -> int:
    """Messages the naive version sent (by its subject: the shop's recovery sweep also sees the naive
    versions' orders, and may send the shop's own emails for one it finds stuck)."""
    return sum(
        order.email in message["to"] and message["subject"] == subject
        for message in lab.sandbox.mail_messages()
    )


def has_pdf(order: Order) -> bool:
    return bool(Order.objects.select_related("invoice").get(pk=order.pk).invoice.pdf)


def naive_taken(lab: LabStack) -> bool:
    """The naive queue is empty: a worker process has taken the job just sent."""
    return redis.Redis.from_url(lab.redis_url).llen(f"{NAIVE_PREFIX}naive") == 0


def kill_pool(worker: Child) -> int:
    """SIGKILL the worker's pool processes (what the OOM killer does to the process running a job); the
    main process lives on and starts new ones. Returns how many were killed."""
    pool = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == worker.pid:
            pool.append(int(stat.parent.name))
    for pid in pool:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pool)


def kill_worker(worker: Child) -> float:
    """SIGKILL the whole worker (main process and pool: one process group), start it again; returns the
    monotonic time of the kill."""
    killed_at = time.monotonic()
    worker.signal_group(signal.SIGKILL)
    assert worker.popen is not None
    worker.popen.wait(10)
    if worker.pump is not None:
        worker.pump.join(5)
    worker.start()
    wait(lambda: "ready." in worker.output_tail(), 60, f"{worker.name} to be ready again")
    return killed_at


def patiently(check: Callable[[], bool], seconds: float = SETTLE_SECONDS) -> bool:
    """Whether `check` came true within `seconds` (a naive version may never get there)."""
    try:
        wait(check, seconds, "")
    except TimeoutError:
        return False
    return True


# --- 2. idempotent charge ---------------------------------------------------------------------------------
def idempotent_charge(lab: LabStack) -> Row:
    """The gateway commits the first charge and drops the connection before answering; the job retries."""

    def run(start: Callable[[], Order], done: str) -> tuple[int, bool]:
        fresh(lab)
        lab.sandbox.set_fault("payments", drop_after_commit=True)
        order = start()
        wait(lambda: charges(lab, [order]) >= 1, SETTLE_SECONDS, "the first charge")
        lab.sandbox.set_fault("payments", drop_after_commit=False)  # the retry gets its answer
        finished = patiently(settled([order], done))
        return charges(lab, [order]), finished

    def naive_start() -> Order:
        order = naive_order()
        naive_charge.charge_order.delay(str(order.public_id))
        return order

    naive, _ = run(naive_start, Order.Status.PAID)
    shop, finished = run(shop_order, Order.Status.COMPLETED)
    return Row(
        "2 idempotent charge",
        "gateway drops the connection after committing the charge",
        Side(f"{naive} charges for 1 order", naive != 1, {"charges": naive}),
        Side(
            f"{shop} charge for 1 order, completed: {finished}", shop != 1 or not finished, {"charges": shop}
        ),
        "lab/naive/charge.py",
        "billing/payments.py",
    )


# --- 6. circuit breaker, and trap C: a breaker in process memory ------------------------------------------
OUTAGE_ORDERS = 6
OUTAGE_SECONDS = 8.0


def breaker_bound() -> int:
    """The shop's promise during an outage: `threshold` failing calls, then one probe per cooldown."""
    config = settings.CIRCUIT_BREAKERS["payments"]
    return config["failure_threshold"] + math.ceil(OUTAGE_SECONDS / config["cooldown_seconds"]) + 1


def outage(lab: LabStack, start: Callable[[], Order]) -> tuple[int, list[Order]]:
    """OUTAGE_ORDERS orders during a gateway outage of OUTAGE_SECONDS: the calls that reached it."""
    fresh(lab)
    lab.sandbox.set_fault("payments", outage=True)
    began = time.monotonic()
    orders = [start() for _ in range(OUTAGE_ORDERS)]
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - began)))
    calls = gateway_calls(lab)
    lab.sandbox.set_fault("payments", outage=False)
    return calls, orders


def shop_outage(lab: LabStack) -> Side:
    calls, orders = outage(lab, shop_order)
    completed = patiently(settled(orders, Order.Status.COMPLETED))
    paid, total = count(orders, Order.Status.COMPLETED), charges(lab, orders)
    return Side(
        f"{calls} calls to the down gateway (bound {breaker_bound()}); {paid}/{len(orders)} orders completed "
        f"after it, {total} charges",
        calls > breaker_bound() or not completed or total != len(orders),
        {"calls": calls, "completed": paid, "charges": total},
    )


def naive_outage(lab: LabStack, task: Callable[..., object]) -> Side:
    def start() -> Order:
        order = naive_order()
        task.delay(str(order.public_id))
        return order

    calls, orders = outage(lab, start)
    time.sleep(3)  # the retries already sent for after the outage
    paid = count(orders, Order.Status.PAID)
    return Side(
        f"{calls} calls to the down gateway; {paid}/{len(orders)} orders paid (the rest ran out of retries)",
        calls > breaker_bound(),
        {"calls": calls, "paid": paid},
    )


def circuit_breaker(lab: LabStack) -> Row:
    return Row(
        "6 circuit breaker",
        f"gateway down {OUTAGE_SECONDS:g} s, {OUTAGE_ORDERS} orders",
        naive_outage(lab, naive_charge.charge_order),
        shop_outage(lab),
        "lab/naive/charge.py",
        "jobkit/breaker.py",
    )


def breaker_in_memory(lab: LabStack) -> Row:
    return Row(
        "C breaker in process memory",
        f"gateway down {OUTAGE_SECONDS:g} s, {OUTAGE_ORDERS} orders, {CONCURRENCY} worker processes",
        naive_outage(lab, naive_breaker.charge_order),
        shop_outage(lab),
        "lab/naive/breaker.py",
        "jobkit/breaker.py",
    )


# --- 7. compensated workflow -----------------------------------------------------------------------------
def compensated_workflow(lab: LabStack) -> Row:
    """The carrier refuses the delivery registration, after the first month was charged."""
    plan = seed_plans()[0]
    fresh(lab)
    lab.sandbox.set_fault("carrier", reject_registrations=True)
    naive_signup.sign_up.delay("naive-signup-1", int(plan.price * 100), plan.code)
    wait(lambda: charges(lab), SETTLE_SECONDS, "the naive sign-up's charge")
    naive_quiet(lab)  # the sign-up gave up
    naive = {"charges": charges(lab), "refunds": len(lab.sandbox.refunds())}

    fresh(lab)
    lab.sandbox.set_fault("carrier", reject_registrations=True)
    with transaction.atomic():
        subscription = sign_up(
            email="shop@example.com", plan=plan, payment_method="pm_card_visa", request_key="lab-1"
        )
    ended = patiently(
        lambda: Subscription.objects.filter(pk=subscription.pk, status=Subscription.Status.FAILED).exists()
    )
    shop = {"charges": charges(lab), "refunds": len(lab.sandbox.refunds())}
    return Row(
        "7 compensated workflow",
        "carrier rejects the registration after the charge",
        Side(
            f"{naive['charges']} charges, {naive['refunds']} refunds, no subscription",
            naive["charges"] > naive["refunds"],
            naive,
        ),
        Side(
            f"{shop['charges']} charge, {shop['refunds']} refund, sign-up failed: {ended}",
            not ended or shop != {"charges": 1, "refunds": 1},
            shop,
        ),
        "lab/naive/signup.py",
        "subscriptions/signup.py",
    )


# --- 5. scheduled reminders, and trap A: a countdown beyond the visibility timeout --------------------------
def paid_before_the_reminder(lab: LabStack) -> Row:
    """A declined payment schedules a reminder; the customer pays before it is due."""
    delay = VISIBILITY_TIMEOUT / 2  # short of the visibility timeout: this row is not trap A
    fresh(lab)
    order = naive_order()
    naive_reminders.payment_declined(order, countdown=delay)
    naive_charge.charge_order.delay(str(order.public_id))  # the customer pays with another card
    wait(settled([order], Order.Status.PAID), SETTLE_SECONDS, "the naive order to be paid")
    time.sleep(delay + 2)
    naive = reminders_sent(lab)

    fresh(lab)
    order = shop_order("pm_card_chargeDeclined")
    wait(settled([order], Order.Status.PAYMENT_FAILED), SETTLE_SECONDS, "the shop's order to be declined")
    with transaction.atomic():
        pay_again(str(order.public_id), "pm_card_visa")
    completed = patiently(settled([order], Order.Status.COMPLETED))
    first_due = settings.REMINDER_OFFSETS_SECONDS[0]
    time.sleep(first_due + 2)  # past the first reminder's due time
    shop = reminders_sent(lab)
    return Row(
        "5 scheduled reminders",
        "the customer pays before the reminder is due",
        Side(f"{naive} reminder sent to a customer who had paid", naive > 0, {"reminders": naive}),
        Side(
            f"{shop} reminders after the payment; order completed: {completed}",
            shop > 0 or not completed,
            {"reminders": shop},
        ),
        "lab/naive/reminders.py",
        "notifications/reminders.py",
    )


def countdown_beyond_visibility(lab: LabStack) -> Row:
    """A reminder due later than the broker's visibility timeout."""
    delay = VISIBILITY_TIMEOUT * 3
    fresh(lab)
    naive_reminders.payment_declined(naive_order(), countdown=delay)
    time.sleep(delay + 2)
    naive = reminders_sent(lab)

    fresh(lab)
    order = shop_order("pm_card_chargeDeclined")
    expired = patiently(settled([order], Order.Status.EXPIRED))  # after the last reminder
    shop = reminders_sent(lab)
    offsets = settings.REMINDER_OFFSETS_SECONDS
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    return Row(
        "A countdown > visibility timeout (kombu 337)",
        f"a reminder {delay:g} s away, visibility timeout {VISIBILITY_TIMEOUT} s",
        Side(f"1 reminder sent {naive} times", naive != 1, {"reminders": naive}),
        Side(
            f"{shop} reminders for {len(offsets)} due at +{'/+'.join(map(str, offsets))} s "
            f"(visibility timeout {visibility} s), each once; order expired: {expired}",
            shop != len(offsets) or not expired,
            {"reminders": shop},
        ),
        "lab/naive/reminders.py",
        "notifications/reminders.py",
    )


# --- 1. single-responsibility jobs -----------------------------------------------------------------------
MAIL_OUTAGE_SECONDS = 4.0


def single_responsibility(lab: LabStack) -> Row:
    """The mail server is down when the order is paid, for MAIL_OUTAGE_SECONDS (for the shop, until its
    PDF and shipment are done too, should that take longer), then back."""

    def run(start: Callable[[], Order], ready: Callable[[Order], bool]) -> tuple[Order, dict[str, int]]:
        fresh(lab)
        lab.sandbox.set_fault("mail", outage=True)
        began = time.monotonic()
        order = start()
        time.sleep(max(0.0, MAIL_OUTAGE_SECONDS - (time.monotonic() - began)))
        patiently(lambda: ready(order), SETTLE_SECONDS / 2)
        during = {"shipments_in_outage": shipments(lab, order), "pdf_in_outage": int(has_pdf(order))}
        lab.sandbox.set_fault("mail", outage=False)
        return order, during

    def naive_start() -> Order:
        order = naive_order()
        naive_process.process_order.delay(str(order.public_id))
        return order

    order, naive = run(naive_start, lambda order: True)
    patiently(settled([order], Order.Status.PAID))
    naive_quiet(lab)  # the job sent its email and shipped after the outage, or ran out of retries
    naive.update(charges=charges(lab, [order]), shipments=shipments(lab, order))
    naive["emails"] = emails_to(lab, order, "Your order")

    order, shop = run(shop_order, lambda order: has_pdf(order) and shipments(lab, order) > 0)
    completed = patiently(settled([order], Order.Status.COMPLETED))
    emails = Counter(m["subject"] for m in lab.sandbox.mail_messages() if order.email in m["to"])
    shop.update(charges=charges(lab, [order]), shipments=shipments(lab, order), emails=sum(emails.values()))
    return Row(
        "1 single-responsibility jobs",
        f"mail server down {MAIL_OUTAGE_SECONDS:g} s while an order is processed",
        Side(
            f"{naive['charges']} charges for 1 order (one per retry of the whole job); during the outage "
            f"{naive['shipments_in_outage']} shipments; after it {naive['shipments']} shipment, "
            f"{naive['emails']} email",
            naive["charges"] != 1 or naive["shipments_in_outage"] == 0,
            naive,
        ),
        Side(
            f"during the outage PDF stored: {bool(shop['pdf_in_outage'])}, {shop['shipments_in_outage']} "
            f"shipment; after it {shop['emails']} emails ({len(emails)} kinds, each once), "
            f"{shop['shipments']} shipment, {shop['charges']} charge, completed: {completed}",
            not completed
            or shop["pdf_in_outage"] != 1
            or shop["shipments_in_outage"] != 1
            or shop["shipments"] != 1
            or shop["charges"] != 1
            or len(emails) != 2
            or set(emails.values()) != {1},
            shop,
        ),
        "lab/naive/order.py",
        "orders/pipeline.py",
    )


# --- 3. chained workflow ----------------------------------------------------------------------------------
GATEWAY_LATENCY_MS = 3000  # the charge step's call is in flight this long: the moment the kill lands


def chained_workflow(lab: LabStack) -> Row:
    """The process running the chain's charge step is SIGKILLed while its gateway call is in flight."""
    fresh(lab)
    lab.sandbox.set_fault("payments", latency_ms=GATEWAY_LATENCY_MS)
    order = naive_order()
    naive_chain.start_order.delay(str(order.public_id))
    wait(settled([order], Order.Status.PROCESSING), SETTLE_SECONDS, "the naive chain's first step")
    wait(lambda: naive_taken(lab), SETTLE_SECONDS, "the naive charge step to be taken")
    time.sleep(1.0)  # its gateway call is in flight
    kill_pool(lab.naive)
    lab.sandbox.set_fault("payments", latency_ms=0)
    time.sleep(3 * VISIBILITY_TIMEOUT + 2)  # long past any redelivery the broker would make
    naive_quiet(lab)
    status = Order.objects.get(pk=order.pk).status
    naive = {
        "stuck": int(status == Order.Status.PROCESSING),
        "charges": charges(lab, [order]),
        "pdf": int(has_pdf(order)),
        "emails": emails_to(lab, order, "Your invoice"),
    }

    fresh(lab)
    lab.sandbox.set_fault("payments", latency_ms=GATEWAY_LATENCY_MS)
    order = shop_order()
    wait(
        lambda: PaymentAttempt.objects.filter(invoice_id=order.invoice_id).exists(),
        SETTLE_SECONDS,
        "the shop's charge step to open its payment attempt",
    )
    time.sleep(0.5)  # its gateway call is in flight
    killed_at = time.monotonic()
    kill_pool(lab.shop)
    lab.sandbox.set_fault("payments", latency_ms=0)
    completed = patiently(settled([order], Order.Status.COMPLETED))
    took = time.monotonic() - killed_at
    shop = {"charges": charges(lab, [order]), "completed": int(completed), "seconds": round(took)}
    return Row(
        "3 chained workflow",
        "the process running the charge step is SIGKILLed mid-call",
        Side(
            f"order left {status} with nothing queued for it ({3 * VISIBILITY_TIMEOUT + 2} s later): "
            f"{naive['charges']} charge, PDF {bool(naive['pdf'])}, {naive['emails']} emails",
            status != Order.Status.COMPLETED,
            naive,
        ),
        Side(
            f"step requeued, order completed: {completed}, {took:.0f} s after the kill; "
            f"{shop['charges']} charge",
            not completed or shop["charges"] != 1,
            shop,
        ),
        "lab/naive/chain.py",
        "orders/pipeline.py",
    )


# --- 4. batch billing -------------------------------------------------------------------------------------
BILLED = 30
BILLING_LATENCY_MS = 100  # each gateway call takes this long, so the kill lands mid-run


def charges_per_subscription(lab: LabStack) -> Counter[str]:
    return Counter(
        intent["metadata"]["subscription_id"]
        for intent in lab.sandbox.payment_intents()
        if intent["status"] == "succeeded" and "subscription_id" in intent["metadata"]
    )


def batch_billing(lab: LabStack) -> Row:
    """The whole worker is SIGKILLed once a third of the due subscriptions are charged, and started again."""
    day = clock.today()
    third = BILLED // 3

    def kill_mid_run(worker: Child) -> None:
        wait(lambda: charges(lab) >= third, SETTLE_SECONDS, f"{third} renewals charged")
        kill_worker(worker)

    fresh(lab)
    lab.sandbox.set_fault("payments", latency_ms=BILLING_LATENCY_MS)
    subscriptions = due_subscriptions(seed_plans()[0], BILLED, day, tag="lab-naive")
    naive_billing.bill_due_subscriptions.delay(day.isoformat())
    kill_mid_run(lab.naive)
    ids = [subscription.pk for subscription in subscriptions]
    patiently(lambda: not Subscription.objects.filter(pk__in=ids, current_period_end__lte=day).exists())
    naive_quiet(lab)
    per = charges_per_subscription(lab)
    naive = {"charges": sum(per.values()), "charged_twice": sum(n > 1 for n in per.values())}
    Subscription.objects.filter(pk__in=ids).update(status=Subscription.Status.CANCELLED)  # out of the way

    fresh(lab)
    lab.sandbox.set_fault("payments", latency_ms=BILLING_LATENCY_MS)
    due_subscriptions(seed_plans()[0], BILLED, day, tag="lab-shop")
    run, _ = start_run(day)
    kill_mid_run(lab.shop)
    done = patiently(lambda: BillingRun.objects.filter(pk=run.pk, status=BillingRun.Status.DONE).exists())
    run.refresh_from_db()
    per = charges_per_subscription(lab)
    shop = {
        "charges": sum(per.values()),
        "charged_twice": sum(n > 1 for n in per.values()),
        "billed": run.subscriptions_billed,
    }
    return Row(
        "4 batch billing",
        f"{BILLED} subscriptions due; the worker SIGKILLed after {third} charges, restarted",
        Side(
            f"{naive['charges']} charges for {BILLED} subscriptions: {naive['charged_twice']} charged twice",
            naive["charged_twice"] > 0,
            naive,
        ),
        Side(
            f"{shop['charges']} charges for {BILLED} subscriptions: {shop['charged_twice']} charged twice; "
            f"run done: {done}, {shop['billed']} billed",
            not done or shop["charged_twice"] or shop["charges"] != BILLED or shop["billed"] != BILLED,
            shop,
        ),
        "lab/naive/billing.py",
        "subscriptions/renewals.py",
    )


# --- trap B: the whole worker killed, on Redis --------------------------------------------------------------
def whole_worker_killed(lab: LabStack) -> Row:
    """The whole worker (main process and pool) is SIGKILLed while a charge's gateway call is in flight,
    then started again."""

    def naive_run(task: Callable[..., object], started: Callable[[], bool]) -> tuple[bool, float, int]:
        fresh(lab)
        lab.sandbox.set_fault("payments", latency_ms=GATEWAY_LATENCY_MS)
        order = naive_order()
        task.delay(str(order.public_id))
        wait(started, SETTLE_SECONDS, "the naive charge to start")
        time.sleep(1.0)  # its gateway call is in flight
        killed_at = kill_worker(lab.naive)
        lab.sandbox.set_fault("payments", latency_ms=0)
        paid = patiently(settled([order], Order.Status.PAID), 3 * VISIBILITY_TIMEOUT + 2)
        took = time.monotonic() - killed_at
        naive_quiet(lab)
        return paid, took, charges(lab, [order])

    # Early acks: a worker acknowledges a job as a pool process starts it, so no message held means it
    # runs, and the kill lands while its gateway call is in flight (taken from the queue alone does not
    # say it started). With acks_late, held to its end: taken is all there is to wait for.
    lost_paid, _, lost_charges = naive_run(naive_charge.charge_order, lambda: naive_held(lab) == 0)
    late_paid, late_took, late_charges = naive_run(naive_worker_lost.charge_order, lambda: naive_taken(lab))
    naive = {
        "defaults_paid": int(lost_paid),
        "defaults_charges": lost_charges,
        "acks_late_paid": int(late_paid),
        "acks_late_seconds": round(late_took),
        "acks_late_charges": late_charges,
    }

    fresh(lab)
    lab.sandbox.set_fault("payments", latency_ms=GATEWAY_LATENCY_MS)
    order = shop_order()
    wait(
        lambda: PaymentAttempt.objects.filter(invoice_id=order.invoice_id).exists(),
        SETTLE_SECONDS,
        "the shop's charge to open its payment attempt",
    )
    time.sleep(0.5)  # its gateway call is in flight
    killed_at = kill_worker(lab.shop)
    lab.sandbox.set_fault("payments", latency_ms=0)
    completed = patiently(settled([order], Order.Status.COMPLETED))
    took = time.monotonic() - killed_at
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    shop = {"completed": int(completed), "seconds": round(took), "charges": charges(lab, [order])}
    return Row(
        "B acks_late on Redis, whole worker killed",
        "the worker (main process and pool) SIGKILLed during a charge, restarted",
        Side(
            f"Celery defaults: job lost, order paid: {lost_paid} ({lost_charges} charge made, never "
            f"recorded); acks_late alone: back after {late_took:.0f} s (its visibility timeout, "
            f"{VISIBILITY_TIMEOUT} s; Celery's default 3600 s), {late_charges} charges",
            not lost_paid or late_charges != 1,
            naive,
        ),
        Side(
            f"back after {took:.0f} s (visibility timeout {visibility} s), order completed: {completed}, "
            f"{shop['charges']} charge",
            not completed or shop["charges"] != 1,
            shop,
        ),
        "lab/naive/worker_lost.py",
        "jobkit/recovery.py",
    )


CASES: dict[str, Callable[[LabStack], Row]] = {
    "pipeline": single_responsibility,
    "charge": idempotent_charge,
    "chain": chained_workflow,
    "batch": batch_billing,
    "breaker": circuit_breaker,
    "memory-breaker": breaker_in_memory,
    "compensation": compensated_workflow,
    "reminders": paid_before_the_reminder,
    "long-countdown": countdown_beyond_visibility,
    "worker-killed": whole_worker_killed,
}
