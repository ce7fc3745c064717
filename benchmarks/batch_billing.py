"""Batch billing throughput and memory: subscriptions billed per second for each size, against raw SDK
charges to the same sandbox at the same concurrency (the worker's 2 processes), and the billing worker's
peak RSS per size (each size gets a fresh worker, so the peaks compare)."""

from __future__ import annotations

import datetime
import multiprocessing
import time
import uuid
from pathlib import Path

from benchmarks.stack import BenchStack
from devstack import processes
from shop.factories import seed_plans
from subscriptions import renewals
from subscriptions.models import BillingRun, Plan, Subscription


def make_due_subscriptions(plan: Plan, count: int, due: datetime.date) -> None:
    start = due - datetime.timedelta(days=30)
    tag = uuid.uuid4().hex[:8]
    for first in range(0, count, 5000):
        Subscription.objects.bulk_create(
            Subscription(
                request_key=f"bench-{tag}-{n}",
                email=f"bench{n}@example.com",
                plan=plan,
                payment_method="pm_card_visa",
                status=Subscription.Status.ACTIVE,
                step=Subscription.Step.DONE,
                current_period_start=start,
                current_period_end=due,
            )
            for n in range(first, min(first + 5000, count))
        )


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


def run_size(stack: BenchStack, size: int, due: datetime.date) -> dict[str, float]:
    plan = next(p for p in seed_plans() if p.code == "coffee-monthly")
    make_due_subscriptions(plan, size, due)
    start = time.perf_counter()
    run, _ = renewals.start_run(due)
    while not BillingRun.objects.filter(pk=run.pk, status=BillingRun.Status.DONE).exists():
        time.sleep(0.5)
    elapsed = time.perf_counter() - start
    run.refresh_from_db()
    if run.subscriptions_billed != size:
        raise RuntimeError(f"billed {run.subscriptions_billed} of {size}")
    return {
        "size": size,
        "billed_per_s": size / elapsed,
        "seconds": elapsed,
        "peak_rss_mb": peak_rss_mb(stack.worker),
    }


def _charge_loop(api_base: str, count: int) -> None:
    import stripe

    client = stripe.StripeClient("sk_sandbox_bench", base_addresses={"api": api_base}, max_network_retries=0)
    for _ in range(count):
        client.v1.payment_intents.create(
            {"amount": 2400, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True},
            {"idempotency_key": uuid.uuid4().hex},
        )


def raw_charge_rate(stack: BenchStack, charges: int, concurrency: int = 2) -> float:
    """Charges per second straight through the SDK, `concurrency` processes like the worker's pool."""
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_charge_loop, args=(stack.sandbox.api_base, charges // concurrency))
        for _ in range(concurrency)
    ]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return charges / (time.perf_counter() - start)


def report(results: list[dict[str, float]], raw: float) -> str:
    lines = [f"Batch billing (worker: 2 processes; raw SDK charges, 2 processes: {raw:.1f}/s)"]
    for r in results:
        lines.append(
            f"  {int(r['size']):>7} subscriptions  {r['billed_per_s']:7.1f} billed/s  ({r['seconds']:.0f} s)"
            f"  ratio to raw {r['billed_per_s'] / raw:.2f}x  peak worker RSS {r['peak_rss_mb']:.0f} MB"
        )
    if len(results) > 1:
        growth = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
        lines.append(f"  peak RSS, largest/smallest size: {growth:.2f}x")
    return "\n".join(lines)
