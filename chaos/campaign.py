"""One campaign: load and faults on a schedule drawn from the seed, then the shop settles by itself, then
the invariants are checked against the sandbox's records and the database.

    start the stack -> [fault window: load + faults] -> faults stop -> settle (no manual step) -> check
"""

from __future__ import annotations

import datetime
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import close_old_connections
from django.db.models import Max
from django.utils import timezone

from chaos import invariants, load, schedule
from chaos.invariants import BillingPlan, Evidence, OutageRecord, Row
from chaos.progress import Progress
from chaos.schedule import Fault, Sizes
from chaos.stack import BILLING_WORKERS, GATEWAY_CALLERS, ChaosStack, Exit
from jobkit.breaker import breaker_for
from notifications.models import Notification
from orders.models import Order
from sandbox.testing import SandboxControl
from shop.factories import due_subscriptions, seed_catalogue, seed_plans
from subscriptions.models import BillingBatch, BillingRun, Subscription

DECLINING_EVERY = 20  # every 20th billed subscription declines, as in tests/e2e/test_batch_billing.py
BILLING_LEAD_DAYS = 7  # billed as of a week from now: sign-ups made today (due in a month) are not due yet
WEBHOOK_DUPLICATES = 1  # every Stripe event delivered twice, for the whole window, in shuffled order
BLIP_EVERY = 0.5  # seconds between two rounds of terminated connections during a database blip
# The shop has settled when nothing is left in flight. It must get there by itself; the runner gives up
# when nothing has moved for STALL_FACTOR x the longest quiet stretch of any recovery path (see
# `stall_seconds`), or after the cap, which only a shop that keeps moving without finishing reaches.
STALL_FACTOR = 2
SETTLE_CAP_SECONDS = 1800


@dataclass
class Outcome:
    rows: list[Row]
    settled_after: float | None  # seconds after the faults stopped; None: did not settle
    unsettled: dict[str, list[str]]
    requests: int
    failed_requests: int
    faults: int
    fired: dict[str, str]
    errors: list[str]
    exits: list[Exit]

    @property
    def violations(self) -> int:
        return sum(len(row.violations) for row in self.rows)

    @property
    def ok(self) -> bool:
        return self.settled_after is not None and not self.violations and not self.errors


def stall_seconds() -> float:
    """How long the settle wait accepts no visible progress: twice the longest quiet stretch of a
    recovery path. A lost message shows nothing until the sweep may call its subject stuck and its slot
    comes (SWEEP_STUCK_AFTER_SECONDS + SWEEP_INTERVAL_SECONDS); a killed worker's message comes back
    after the visibility timeout; an email whose sender died mid-send waits for its ledger lease
    (2 x EMAIL_TIMEOUT + 10 s, notifications/services.py)."""
    transport = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    quiet = max(
        settings.SWEEP_STUCK_AFTER_SECONDS + settings.SWEEP_INTERVAL_SECONDS,
        transport["visibility_timeout"] + transport["unacked_restore_interval"],
        2 * settings.EMAIL_TIMEOUT + 10,
    )
    return STALL_FACTOR * quiet


@dataclass
class Campaign:
    seed: int
    sizes: Sizes
    stack: ChaosStack
    say: Callable[[str], None] = print
    progress: Progress = field(default_factory=Progress)  # the events as JSON, for /ops/'s chaos panel
    kills: list[tuple[float, str]] = field(default_factory=list)
    blips: list[tuple[float, float]] = field(default_factory=list)
    broker_down: list[tuple[float, float]] = field(default_factory=list)
    outage: OutageRecord | None = None
    injected: int = 0
    errors: list[str] = field(default_factory=list)  # faults the campaign failed to inject or end
    _outage_start: dict[str, Any] = field(default_factory=dict)
    _blip_stop: threading.Event = field(default_factory=threading.Event)
    _started: float = 0.0

    def run(self) -> Outcome:
        rng = random.Random(self.seed)
        billing, skus, plans = self.prepare()
        sandbox = SandboxControl(self.stack.sandbox_url)
        window = schedule.fault_window(self.sizes.orders, self.sizes.signups)
        workers, postgres = list(self.stack.workers), self.stack.database.postgres
        faults = schedule.draw(rng, window, self.sizes.kills, workers, postgres)
        requests = load.plan(rng, self.sizes.orders, self.sizes.signups, window, faults, skus, plans)
        self.say(f"fault window {window:.0f} s; schedule:")
        for fault in faults:
            self.say(f"  {fault.describe(shared_broker=not self.stack.own_redis)}")
        self.progress.phase("faults", window=window)

        sandbox.set_fault("webhooks", duplicate=WEBHOOK_DUPLICATES, shuffle=True)
        self.injected = 1  # the webhook faults, on for the whole window
        self.progress.fault(0.0, "webhooks: every Stripe event delivered twice, shuffled", end=False)
        traffic = load.Load(self.stack.web_url, requests)
        stop = threading.Event()
        self._started = time.monotonic()
        threads = [
            threading.Thread(target=self._supervise, args=(stop, traffic), daemon=True),
            threading.Thread(target=self._inject, args=(faults, sandbox, billing), daemon=True),
            threading.Thread(target=traffic.run, args=(self._started, stop.is_set), daemon=True),
        ]
        for thread in threads:
            thread.start()
        threads[1].join()  # every fault started and ended
        threads[2].join()  # every request answered
        if len(traffic.answers) < traffic.sends:  # the load itself failed: the campaign proves nothing
            self.errors.append(
                f"the load stopped early: {len(traffic.answers)} of {traffic.sends} requests sent"
            )
        self.end_faults(sandbox)
        self.say(f"{self._now():6.1f}s  faults stopped; waiting for the shop to settle")
        self.progress.phase("settling")
        settled_after, unsettled = self.settle()
        stop.set()
        threads[0].join()
        self.progress.phase("checking")

        evidence = Evidence(
            sandbox=sandbox,
            requests=requests,
            answers=traffic.answers,
            billing=billing,
            kills=self.kills + [(e.at, e.name) for e in self.stack.exits if e.cause.startswith("crash")],
            blips=self.blips,
            broker_down=self.broker_down,
            outage=self.outage,
        )
        return Outcome(
            rows=invariants.check_all(evidence),
            settled_after=settled_after,
            unsettled=unsettled,
            requests=len(traffic.answers),
            failed_requests=load.failed(traffic.answers),
            faults=self.injected,
            fired=dict(self.stack.fired),
            errors=self.errors,
            exits=self.stack.exits,
        )

    # --- before the window -------------------------------------------------------------------------------
    def prepare(self) -> tuple[BillingPlan, list[str], list[str]]:
        """The catalogue and the plans (their skus and codes), and the subscriptions the billing run will
        find due."""
        skus = [product.sku for product in seed_catalogue()]
        plans = seed_plans()
        plan = plans[0]
        date = timezone.localdate() + datetime.timedelta(days=BILLING_LEAD_DAYS)
        count = self.sizes.subscriptions
        due_subscriptions(plan, count, date, tag="chaos-renewal", declining_every=DECLINING_EVERY)
        billing = BillingPlan(date, count, count // DECLINING_EVERY, plan.price, settings.BILLING_BATCH_SIZE)
        return billing, skus, [p.code for p in plans]

    # --- during the window -------------------------------------------------------------------------------
    def _now(self) -> float:
        return time.monotonic() - self._started

    def _supervise(self, stop: threading.Event, traffic: load.Load) -> None:
        while not stop.wait(0.5):
            self.stack.supervise()
            answers = list(traffic.answers)
            self.progress.load(traffic.sends, len(answers), load.failed(answers))

    def _inject(self, faults: list[Fault], sandbox: SandboxControl, billing: BillingPlan) -> None:
        events = sorted(
            [(f.at, True, f) for f in faults] + [(f.until, False, f) for f in faults if f.duration],
            key=lambda event: event[0],
        )
        try:
            for at, starting, fault in events:
                time.sleep(max(0.0, at - self._now()))
                what = fault.what(shared_broker=not self.stack.own_redis)
                self.say(f"{self._now():6.1f}s  {'' if starting else 'end: '}{what}")
                self.progress.fault(self._now(), what, end=not starting)
                try:
                    if starting:
                        self.begin(fault, sandbox, billing)
                        self.injected += fault.kind not in schedule.NOT_FAULTS
                    else:
                        self.end(fault, sandbox)
                except Exception as exc:  # the campaign did not do what it says: the run proves nothing
                    self.errors.append(f"{self._now():.1f}s {what}: {type(exc).__name__}: {exc}")
                    self.say(f"campaign error: {self.errors[-1]}")
        finally:
            close_old_connections()

    def begin(self, fault: Fault, sandbox: SandboxControl, billing: BillingPlan) -> None:
        kind = fault.kind
        if kind == "gateway_outage":
            sandbox.set_fault("payments", outage=True)
            self._outage_start = {
                "at": time.time(),
                "calls": sandbox.stats()["payments"]["received"],
                "probes": breaker_for("payments").snapshot()["probes"],
            }
        elif kind == "gateway_drops":
            sandbox.set_fault("payments", drop_after_commit=True)
        elif kind == "carrier_slow":
            sandbox.set_fault("carrier", latency_ms=schedule.CARRIER_LATENCY_MS)
        elif kind == "reject_registrations":
            sandbox.set_fault("carrier", reject_registrations=True)
        elif kind == "mail_errors":
            sandbox.set_fault("mail", error_rate=schedule.MAIL_ERROR_RATE)
        elif kind == "smtp_outage":
            sandbox.set_fault("mail", outage=True)
        elif kind == "broker_flush":
            self.stack.flush_broker()
        elif kind == "broker_down":
            if self.stack.own_redis:  # a shared server only had its connections cut: never down
                self.broker_down.append((time.time(), time.time() + fault.duration))
            self.stack.stop_broker()
        elif kind == "database_blip":
            self._blip_stop.clear()
            self.blips.append((time.time(), time.time() + fault.duration))
            threading.Thread(target=self._blip, name="blip", daemon=True).start()
        elif kind == "kill":
            self.kills.append((time.time(), fault.target))
            self.stack.kill_worker(fault.target)
        elif kind == "relay_kill":
            self.stack.kill_relay()
        elif kind == "arm":
            self.kills += [(time.time(), name) for name in BILLING_WORKERS]
            self.stack.arm(fault.target)
        elif kind == "billing_run":
            call_command("bill_due", date=billing.date.isoformat())
        else:
            raise ValueError(f"unknown fault {kind}")

    def end(self, fault: Fault, sandbox: SandboxControl) -> None:
        kind = fault.kind
        if kind == "gateway_outage":
            snapshot = breaker_for("payments").snapshot(transitions=100)
            calls = sandbox.stats()["payments"]["received"]
            sandbox.set_fault("payments", outage=False)
            start = self._outage_start
            self.outage = OutageRecord(
                calls=calls - start["calls"],
                probes=snapshot["probes"] - start["probes"],
                transitions=[t for t in reversed(snapshot["transitions"]) if t["at"] >= start["at"]],
                threshold=settings.CIRCUIT_BREAKERS["payments"]["failure_threshold"],
                # a billing batch keeps GATEWAY_CALLS_IN_FLIGHT calls going in each billing process
                in_flight=GATEWAY_CALLERS * settings.GATEWAY_CALLS_IN_FLIGHT,
            )
        elif kind == "gateway_drops":
            sandbox.set_fault("payments", drop_after_commit=False)
        elif kind == "carrier_slow":
            sandbox.set_fault("carrier", latency_ms=0)
        elif kind == "reject_registrations":
            sandbox.set_fault("carrier", reject_registrations=False)
        elif kind == "mail_errors":
            sandbox.set_fault("mail", error_rate=0.0)
        elif kind == "smtp_outage":
            sandbox.set_fault("mail", outage=False)
        elif kind == "broker_down":
            self.stack.start_broker()
        elif kind == "database_blip":
            self._blip_stop.set()

    def _blip(self) -> None:
        try:
            while not self._blip_stop.is_set():
                self.stack.terminate_job_connections()
                self._blip_stop.wait(BLIP_EVERY)
        finally:
            close_old_connections()

    def end_faults(self, sandbox: SandboxControl) -> None:
        """Every fault off: the sandbox's, the broker's, the blip, and crash points not reached (they never
        will be)."""
        sandbox.clear_faults()
        self.stack.start_broker()
        self._blip_stop.set()
        for point in schedule.CRASH_POINTS:
            self.stack.disarm(point)

    # --- after the window ----------------------------------------------------------------------------------
    def settle(self) -> tuple[float | None, dict[str, list[str]]]:
        """Wait until nothing is in flight; (seconds it took, {}), or (None, what is still in flight)."""
        stall = stall_seconds()
        began = last_move = time.monotonic()
        seen: Any = None
        while True:
            left = in_flight()
            if not any(left.values()):
                return time.monotonic() - began, {}
            # The periodic jobs (sweeps, reminders) run forever: only the subjects' jobs show progress.
            fingerprint = (
                tuple(len(ids) for ids in left.values()),
                invariants.domain_jobs().aggregate(Max("updated_at"))["updated_at__max"],
            )
            now = time.monotonic()
            if fingerprint != seen:
                seen, last_move = fingerprint, now
            if now - last_move > stall or now - began > SETTLE_CAP_SECONDS:
                why = f"nothing moved for {stall:.0f} s" if now - last_move > stall else "the cap"
                self.say(f"not settled after {now - began:.0f} s ({why})")
                return None, left
            time.sleep(1)


IN_FLIGHT_ORDERS = ("placed", "processing", "paid")


def in_flight() -> dict[str, list[str]]:
    """What keeps the shop from being settled, by kind, with ids."""
    unfinished_jobs = invariants.domain_jobs().filter(status__in=invariants.UNFINISHED_JOBS)
    return {
        "orders": [f"{o.public_id} {o.status}" for o in Order.objects.filter(status__in=IN_FLIGHT_ORDERS)],
        "sign-ups": [
            f"{s.public_id} {s.status}/{s.step}"
            for s in Subscription.objects.filter(status__in=("pending", "compensating"))
        ],
        "billing": [f"run {r.pk} {r.status}" for r in BillingRun.objects.exclude(status="done")]
        + [f"batch {b.pk} {b.status}" for b in BillingBatch.objects.filter(status="pending")],
        "emails": [f"{n.kind} {n.subject} {n.status}" for n in Notification.objects.exclude(status="sent")],
        "jobs": [f"{j.name} {j.subject} {j.status}" for j in unfinished_jobs],
    }
