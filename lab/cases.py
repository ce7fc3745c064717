"""The lab's rows: each runs one fault against the naive version and against the shop's code, and counts
what happened at the outside world (the sandbox's records) or in the database. Import after Django setup
(lab/__main__.py does, once the stack runs)."""

from __future__ import annotations

import math
from decimal import Decimal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import transaction

from jobkit.breaker import SERVICES, breaker_for
from jobkit.ratelimit import reset_limiter
from lab.naive import breaker as naive_breaker
from lab.naive.app import NAIVE_PREFIX
from lab.naive import charge as naive_charge
from lab.stack import CONCURRENCY, LabStack, wait
from orders.checkout import CartLine, place_order, write_order
from orders.models import Order, Product
from shop.factories import ProductFactory

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
    wait(lambda: not naive_held(lab), SETTLE_SECONDS, "the naive jobs of the previous row to end")
    lab.sandbox.reset()
    for service in SERVICES:
        breaker_for(service).reset()
        reset_limiter(service)


def naive_held(lab: LabStack) -> int:
    """Naive job messages queued, or taken and not acknowledged (retries waiting for their countdown)."""
    client = redis.Redis.from_url(lab.redis_url)
    return client.llen(f"{NAIVE_PREFIX}naive") + client.hlen(f"{NAIVE_PREFIX}unacked")


def idle() -> bool:
    from jobkit.models import JobRun

    return not JobRun.objects.filter(status__in=JobRun.LIVE_STATUSES).exists()


def product() -> Product:
    return ProductFactory(sku="LAB-TEA", name="Lab tea", price=Decimal("12.50"), stock=1_000_000)


def naive_order() -> Order:
    """An order and its invoice written as the shop's checkout writes them, but no job of the shop's."""
    with transaction.atomic():
        return write_order(email="naive@example.com", lines=[CartLine(product(), 1)], payment_method="pm_card_visa")


def shop_order(payment_method: str = "pm_card_visa") -> Order:
    with transaction.atomic():
        return place_order(email="shop@example.com", lines=[CartLine(product(), 1)], payment_method=payment_method)


def charges(lab: LabStack, orders: list[Order]) -> int:
    """Succeeded PaymentIntents at the gateway for these orders (the shop's name the invoice, the naive
    versions' the order)."""
    keys = {str(o.public_id) for o in orders} | {o.invoice.number for o in Order.objects.filter(pk__in=[o.pk for o in orders]).select_related("invoice")}
    return sum(
        intent["status"] == "succeeded"
        and bool(keys & {intent["metadata"].get("order"), intent["metadata"].get("invoice_number")})
        for intent in lab.sandbox.payment_intents()
    )


def gateway_calls(lab: LabStack) -> int:
    return lab.sandbox.stats()["payments"]["received"]


def settled(orders: list[Order], *statuses: str) -> Callable[[], bool]:
    ids = [order.pk for order in orders]
    return lambda: Order.objects.filter(pk__in=ids, status__in=statuses).count() == len(ids)


def count(orders: list[Order], *statuses: str) -> int:
    return Order.objects.filter(pk__in=[o.pk for o in orders], status__in=statuses).count()


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
        Side(f"{shop} charge for 1 order, completed: {finished}", shop != 1 or not finished, {"charges": shop}),
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


CASES: dict[str, Callable[[LabStack], Row]] = {
    "charge": idempotent_charge,
    "breaker": circuit_breaker,
    "memory-breaker": breaker_in_memory,
}
