"""Batch billing throughput and memory: subscriptions billed per second for each size, against raw SDK
charges to the same sandbox at the same concurrency (the worker's 2 processes, each with
GATEWAY_CALLS_IN_FLIGHT threads) measured before and after each size, and the billing worker's peak
RSS per size (each size gets a fresh worker, so the peaks compare). The sizes measure the shop's own cost
per subscription: the sandbox answers at once and no rate limiter paces the calls.

At the limit (`run_at_limit`): billed per second against the rate the run may go at, with the gateway
answering each call after a latency (the sandbox's `latency_ms` fault), our limiter at a rate, and the
sandbox enforcing a rate limit of its own (`rate_limit_per_second`) or none."""

from __future__ import annotations

import datetime
import multiprocessing
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from benchmarks.stack import BenchStack
from devstack import processes
from jobkit.ratelimit import reset_limiter
from shop.factories import due_subscriptions, paid_current_periods, seed_plans
from subscriptions import renewals
from subscriptions.models import BillingRun


def peak_rss_mb(worker: processes.Child) -> float:
    """The largest peak resident set (VmHWM) among the worker's processes (main and pool)."""
    peaks = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == worker.pid:  # process group of the worker
                status = (stat.parent / "status").read_text()
                hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
                peaks.append(int(hwm.split()[1]))
        except (OSError, StopIteration, ValueError, IndexError):
            continue
    return max(peaks, default=0) / 1024


def bill(size: int, due: datetime.date) -> float:
    """Bill `size` new subscriptions due on `due` through a billing run; the seconds it took."""
    plan = next(p for p in seed_plans() if p.code == "coffee-monthly")
    subscriptions = due_subscriptions(plan, size, due, tag=f"bench-{uuid.uuid4().hex[:8]}")
    # The tables as a shop's first billing run meets them: each subscription's signup period, invoice and
    # attempt, with the statistics autovacuum gathers within a minute of such a load. On tables the run
    # itself fills from empty, PostgreSQL planned its reads as whole-table scans (docs/benchmark-history.md).
    paid_current_periods(subscriptions)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    start = time.perf_counter()
    run, _ = renewals.start_run(due)
    # A primary-key read every 0.1 s: each poll's delay is added to the measured time, up to a whole
    # interval (half a second was 1-2% of a 2,000-subscription run at 100/s).
    while not BillingRun.objects.filter(pk=run.pk, status=BillingRun.Status.DONE).exists():
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    run.refresh_from_db()
    if run.subscriptions_billed != size:
        raise RuntimeError(f"billed {run.subscriptions_billed} of {size}")
    return elapsed


def run_size(stack: BenchStack, size: int, due: datetime.date) -> dict[str, float]:
    elapsed = bill(size, due)
    return {
        "size": size,
        "billed_per_s": size / elapsed,
        "seconds": elapsed,
        "peak_rss_mb": peak_rss_mb(stack.worker),
    }


# (our limiter, the gateway's limit; 0: none): Stripe's test-mode and live-mode limits, then our limit
# set above a gateway's that enforces it, where every 429 slows the limiter down.
LIMIT_VARIANTS = ((25, 0), (100, 0), (30, 25))


def run_at_limit(
    stack: BenchStack, size: int, due: datetime.date, our_limit: int, gateway_limit: int, latency_ms: int
) -> dict[str, float]:
    """Bill `size` subscriptions with our limiter at `our_limit` calls/s, the sandbox answering each
    payments call after `latency_ms` and enforcing `gateway_limit` calls/s (0: no limit)."""
    stack.restart_worker(GATEWAY_RATE_LIMIT_PER_SECOND=str(our_limit))
    reset_limiter("payments")
    stack.sandbox.set_fault("payments", latency_ms=latency_ms, rate_limit_per_second=gateway_limit)
    refused_before = stack.sandbox.stats()["payments"]["rejected"]
    intents_before = len(stack.sandbox.payment_intents())
    try:
        elapsed = bill(size, due)
    finally:
        stack.sandbox.clear_faults()
    limit = min(our_limit, gateway_limit or our_limit)
    # What the gateway charged, per invoice: each of the run's invoices once (none lost, none doubled).
    charges = Counter(
        (intent.get("metadata") or {}).get("invoice_number")
        for intent in stack.sandbox.payment_intents()[intents_before:]
        if intent["status"] == "succeeded"
    )
    return {
        "size": size,
        "our_limit": our_limit,
        "gateway_limit": gateway_limit,
        "latency_ms": latency_ms,
        "billed_per_s": size / elapsed,
        "of_limit": size / elapsed / limit,
        "seconds": elapsed,
        "refused_429": stack.sandbox.stats()["payments"]["rejected"] - refused_before,
        "charged_invoices": len(charges),
        "doubled_invoices": sum(1 for count in charges.values() if count > 1),
    }


def _charge_loop(api_base: str, count: int, threads: int, ready: Any, go: Any) -> None:
    import stripe

    from billing.gateway import ChargeRequest, intent_params
    from billing.models import Invoice

    client = stripe.StripeClient("sk_sandbox_bench", base_addresses={"api": api_base}, max_network_retries=0)
    # What a billing batch sends for a subscription: the same parameters, and metadata of the same shape
    # (an invoice's), which the sandbox stores and sends back (without them, 3-4% more raw charges a
    # second). Built once: the loop measures the SDK call, not the building of its request.
    invoice = Invoice(pk=1234567, owner=f"subscription:{uuid.uuid4()}", created_at=datetime.datetime.now())
    metadata = invoice.payment_metadata()

    def charge(_: int) -> None:
        request = ChargeRequest(
            amount_minor=2400,
            currency="EUR",
            payment_method="pm_card_visa",
            idempotency_key=uuid.uuid4().hex,
            metadata=metadata,
        )
        client.v1.payment_intents.create(intent_params(request), {"idempotency_key": request.idempotency_key})

    ready.release()
    go.wait()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(charge, range(count)))


def raw_charge_rate(stack: BenchStack, charges: int, concurrency: int = 2) -> float:
    """Charges per second straight through the SDK, `concurrency` processes like the worker's pool, each
    with as many threads as a billing batch keeps calls in flight. The clock starts once every process
    has started and imported the SDK, as the worker's had before it billed: a spawned process takes
    about a second to start, which counted in, took a quarter off the raw rate of a 3,000-charge run
    (640-775 against 905-930 charges/s on 2 cores)."""
    context = multiprocessing.get_context("spawn")
    ready, go = context.Semaphore(0), context.Event()
    args = (stack.sandbox.api_base, charges // concurrency, settings.GATEWAY_CALLS_IN_FLIGHT, ready, go)
    workers = [context.Process(target=_charge_loop, args=args) for _ in range(concurrency)]
    for worker in workers:
        worker.start()
    for _ in workers:
        if not ready.acquire(timeout=60):
            raise RuntimeError("a raw-charge process did not start within 60 s")
    start = time.perf_counter()
    go.set()
    for worker in workers:
        worker.join()
    if any(worker.exitcode for worker in workers):
        raise RuntimeError("a raw-charge process failed")
    return charges / (time.perf_counter() - start)


def report(billing: dict[str, Any]) -> str:
    runs = ", ".join(f"{raw:.1f}" for raw in billing["raw_charge_runs"])
    lines = [
        f"Batch billing (worker: 2 processes x {settings.GATEWAY_CALLS_IN_FLIGHT} calls in flight, no rate "
        f"limiter; raw SDK charges, as many at once, before and after each size: {runs}/s)"
    ]
    results = billing["sizes"]
    for r in results:
        lines.append(
            f"  {int(r['size']):>7} subscriptions  {r['billed_per_s']:7.1f} billed/s  ({r['seconds']:.0f} s)"
            f"  ratio to raw {r['billed_per_s'] / r['raw_charges_per_s']:.2f}x"
            f" (raw {r['raw_charges_per_s']:.1f}/s)  peak worker RSS {r['peak_rss_mb']:.0f} MB"
        )
    if len(results) > 1:
        growth = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
        lines.append(f"  peak RSS, largest/smallest size: {growth:.2f}x")
    return "\n".join(lines)


def report_at_limit(results: list[dict[str, float]]) -> str:
    first, in_flight = results[0], settings.GATEWAY_CALLS_IN_FLIGHT
    lines = [
        f"Batch billing at the gateway's rate limit ({int(first['size'])} subscriptions a run, gateway "
        f"latency {int(first['latency_ms'])} ms, 2 worker processes x {in_flight} calls in flight)"
    ]
    for r in results:
        gateway = f"{int(r['gateway_limit'])}/s" if r["gateway_limit"] else "unlimited"
        lines.append(
            f"  our limiter {int(r['our_limit']):>3}/s, gateway {gateway:>9}: "
            f"{r['billed_per_s']:6.1f} billed/s  ({r['of_limit']:.0%} of the limit, {r['seconds']:.0f} s)  "
            f"429s: {int(r['refused_429'])}  charged {r.get('charged_invoices', '?')}, "
            f"doubled {r.get('doubled_invoices', '?')}"
        )
    return "\n".join(lines)
