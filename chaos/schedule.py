"""The fault schedule: which fault starts when, and for how long, drawn from the campaign's seed.

Times are seconds after the start of the fault window. The same seed and sizes draw the same schedule,
so a failing campaign replays with `--seed`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# How long each fault lasts, in seconds.
GATEWAY_OUTAGE = 30.0  # the outage: long enough for the breaker to open and probe ~10 times
GATEWAY_DROPS = 8.0  # the gateway commits each charge, then hangs up: every call in it is retried once
CARRIER_SLOW = 15.0  # with 5 s added to every carrier call (below CARRIER_TIMEOUT_SECONDS' 10 s)
CARRIER_LATENCY_MS = 5000
REJECTED_REGISTRATIONS = 15.0  # sign-ups charged in this window meet a 422 at the carrier: compensation
MAIL_ERRORS = 20.0  # half of the SMTP transactions refused with 451
MAIL_ERROR_RATE = 0.5
SMTP_OUTAGE = 15.0  # 421 at connect
# The broker down (killed; restarted empty on the same port) and the database blip (PostgreSQL backends
# terminated every half second) last 5 s: the test suite's blip, well within the ~19 s that a job's six
# retries span with the campaign's backoff (chaos/environment.py).
BROKER_DOWN = 5.0
DATABASE_BLIP = 5.0
# The breaker keeps its state in the broker's Redis: a flush or restart during the gateway outage would
# hand the gateway a fresh failure budget and lose the transitions the breaker check reads. Broker faults
# keep this far from the outage (the breaker's cooldown, and a margin for calls in flight).
BREAKER_MARGIN = 5.0

CRASH_POINTS = ("after_gateway_charge", "mid_billing_batch", "after_gateway_refund")
ARMED_FOR = 12.0  # seconds a crash point stays armed at least before another arming replaces it


@dataclass(frozen=True)
class Sizes:
    orders: int
    signups: int
    subscriptions: int  # due subscriptions the billing run bills
    kills: int  # workers killed at random moments


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float
    duration: float = 0.0  # 0: a single action
    target: str = ""  # the worker killed, or the crash point armed

    @property
    def until(self) -> float:
        return self.at + self.duration

    def what(self, shared_broker: bool = False) -> str:
        """`shared_broker`: REDIS_URL names a server the campaign may not restart."""
        kind = "broker_cut" if shared_broker and self.kind == "broker_down" else self.kind
        return DESCRIPTIONS[kind].format(target=self.target)

    def describe(self, shared_broker: bool = False) -> str:
        span = f"{self.at:6.1f}s-{self.until:.1f}s" if self.duration else f"{self.at:6.1f}s"
        return f"{span:16} {self.what(shared_broker)}"


DESCRIPTIONS = {
    "gateway_outage": "payments outage (503 to every call)",
    "gateway_drops": "payments drop the connection after committing",
    "carrier_slow": f"carrier latency {CARRIER_LATENCY_MS} ms",
    "reject_registrations": "carrier rejects delivery registrations (422)",
    "mail_errors": f"mail refuses {MAIL_ERROR_RATE:.0%} of transactions (451)",
    "smtp_outage": "SMTP outage (421 at connect)",
    "broker_flush": "broker FLUSHALL",
    "broker_down": "broker killed, restarted empty on the same port",
    "broker_cut": "broker: every connection to the campaign's database cut, the database emptied",
    "database_blip": "PostgreSQL: worker connections terminated every 0.5 s",
    "kill": "SIGKILL worker {target} (its whole process group)",
    "relay_kill": "SIGKILL the relay beside the web server (its master starts another)",
    "arm": "arm crash point {target} in the billing workers (killed to restart with it)",
    "billing_run": "start the billing run (python manage.py bill_due --date ...)",
}
NOT_FAULTS = {"billing_run"}  # on the schedule, but load rather than a fault


def fault_window(orders: int, signups: int) -> float:
    """Seconds in which load arrives and faults happen: room for the 30 s outage and the other faults
    apart from it, and 0.1 s more per order or sign-up so a large campaign's load is not one burst."""
    return 90.0 + 0.1 * (orders + signups)


class NoRoom(ValueError):
    """A fault did not fit where the schedule drawn so far leaves room for it."""


def draw(rng: random.Random, window: float, kills: int, workers: list[str], postgres: bool) -> list[Fault]:
    """The schedule, in start order. Faults placed early can leave a later one no room (a few seeds in a
    hundred at the smallest window): then the whole schedule is drawn again, from the same generator."""
    for _ in range(100):
        try:
            return _draw(rng, window, kills, workers, postgres)
        except NoRoom:
            continue
    raise NoRoom(f"no schedule fits a {window:.0f} s window")


def _draw(rng: random.Random, window: float, kills: int, workers: list[str], postgres: bool) -> list[Fault]:
    # The billing run starts early: its batches queue on the billing workers ahead of later charges.
    billing_at = _start(rng, window, 0, earliest=0.05 * window, latest=0.25 * window)
    # Registrations rejected in the second half, with sign-ups charged just before and during it, and
    # nothing there that delays their charge: no outage, dropped calls or lost messages.
    rejections = Fault(
        "reject_registrations",
        _start(rng, window, REJECTED_REGISTRATIONS, earliest=0.45 * window),
        REJECTED_REGISTRATIONS,
    )
    rejecting = (rejections.at - 5, rejections.until)
    outage = Fault("gateway_outage", _start(rng, window, GATEWAY_OUTAGE, avoid=[rejecting]), GATEWAY_OUTAGE)
    near_outage = (outage.at - BREAKER_MARGIN, outage.until + BREAKER_MARGIN)
    # Each crash point armed where it will be reached soon: the billing run as it starts, a refund once
    # rejections begin, a charge outside the outage. Arming restarts the billing workers with the point:
    # each stays armed ARMED_FOR seconds at least, for the restarted workers (up in a few seconds) to
    # reach it, with no other arming, dropped call or broker fault in between.
    others = [(at - ARMED_FOR, at + ARMED_FOR) for at in (billing_at - 1, rejections.at)]
    charge_at = _start(rng, window, 0, latest=window - ARMED_FOR, avoid=[near_outage, *others])
    calm = [near_outage, rejecting, (charge_at, charge_at + ARMED_FOR)]
    flush = Fault("broker_flush", _start(rng, window, 0, avoid=calm))
    down_at = _start(rng, window, BROKER_DOWN, avoid=[*calm, (flush.at - 2, flush.at + 2)])
    faults = [
        outage,
        rejections,
        flush,
        Fault("broker_down", down_at, BROKER_DOWN),
        Fault("gateway_drops", _start(rng, window, GATEWAY_DROPS, avoid=calm), GATEWAY_DROPS),
        Fault("carrier_slow", _start(rng, window, CARRIER_SLOW), CARRIER_SLOW),
        Fault("mail_errors", _start(rng, window, MAIL_ERRORS), MAIL_ERRORS),
        Fault("smtp_outage", _start(rng, window, SMTP_OUTAGE), SMTP_OUTAGE),
    ]
    if postgres:
        faults.append(Fault("database_blip", _start(rng, window, DATABASE_BLIP), DATABASE_BLIP))
    for _ in range(kills):
        faults.append(Fault("kill", _start(rng, window, 0), target=rng.choice(workers)))
    faults.append(Fault("relay_kill", _start(rng, window, 0)))
    faults += [
        Fault("arm", charge_at, target="after_gateway_charge"),
        Fault("arm", round(billing_at - 1, 1), target="mid_billing_batch"),
        Fault("billing_run", billing_at),
        Fault("arm", rejections.at, target="after_gateway_refund"),
    ]
    return sorted(faults, key=lambda fault: fault.at)


def _start(
    rng: random.Random,
    window: float,
    duration: float,
    earliest: float = 0.0,
    latest: float | None = None,
    avoid: list[tuple[float, float]] | None = None,
) -> float:
    """A start between `earliest` and `latest` so the fault ends inside the window, overlapping none of
    `avoid`."""
    latest = window - duration if latest is None else min(latest, window - duration)
    for _ in range(1000):
        at = round(rng.uniform(earliest, latest), 1)
        if all(at + duration <= start or at >= end for start, end in avoid or []):
            return at
    raise NoRoom(f"no room for a {duration:.0f} s fault in a {window:.0f} s window")
