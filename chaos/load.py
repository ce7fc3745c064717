"""The customers: orders and sign-ups through the JSON API, each with its own Idempotency-Key, some sent
twice as a client does after a time-out. Every answer (or its absence) is recorded for the checks.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from chaos.schedule import Fault
from shop.factories import DECLINING_CARD, GOOD_CARD

DECLINING_SHARE = 0.15  # of orders and sign-ups: enough declines to check that none is recorded as paid
RESENT_SHARE = 0.1  # requests the client sends again with the same key
CLIENT_TIMEOUT = 30.0  # seconds a client waits for an answer; no answer by then counts as failed
CLIENTS = 8  # concurrent API clients
# Load that must meet a fault to test what the invariants promise: orders while the broker is down
# (checkout answers 202 all the same), sign-ups while the carrier rejects registrations (compensation).
ORDERS_DURING_BROKER_DOWN = 3
SIGNUPS_DURING_REJECTIONS = 0.4  # share of the sign-ups


@dataclass(frozen=True)
class Request:
    at: float  # seconds after the start of the fault window
    kind: str  # "order" or "signup"
    key: str  # the Idempotency-Key
    body: dict
    resend: str = ""  # "", "concurrent" (while the first is in flight) or "after" (once it answered)
    declining: bool = False


@dataclass(frozen=True)
class Answer:
    kind: str
    key: str
    sent_at: float  # wall clock
    seconds: float
    status: int | None  # None: no answer (refused, reset, timed out)
    resource_id: str = ""
    error: str = ""


def plan(
    rng: random.Random,
    orders: int,
    signups: int,
    window: float,
    faults: list[Fault],
    skus: list[str],
    plans: list[str],
) -> list[Request]:
    """Every request of the campaign, in arrival order: spread over the first 85% of the window (the
    rest lets the last ones meet faults too), with the bursts described above."""
    spread = window * 0.85
    down = next((f for f in faults if f.kind == "broker_down"), None)
    rejecting = next(f for f in faults if f.kind == "reject_registrations")
    planned: list[Request] = []
    for n in range(orders):
        if down is not None and n < ORDERS_DURING_BROKER_DOWN:
            at = rng.uniform(down.at, down.until)
        else:
            at = rng.uniform(0, spread)
        declining = rng.random() < DECLINING_SHARE
        items = [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in rng.sample(skus, rng.randint(1, 3))]
        body = {
            "email": f"order{n}@example.com",
            "items": items,
            "payment_method": DECLINING_CARD if declining else GOOD_CARD,
        }
        planned.append(Request(at, "order", _key(rng, "order", n), body, _resend(rng), declining))
    burst = round(signups * SIGNUPS_DURING_REJECTIONS)
    for n in range(signups):
        # In the first half of the rejection window: charged in time for register_delivery to be refused.
        if n < burst:
            at = rng.uniform(rejecting.at, rejecting.at + rejecting.duration / 2)
        else:
            at = rng.uniform(0, spread)
        declining = rng.random() < DECLINING_SHARE
        body = {
            "email": f"subscriber{n}@example.com",
            "plan": rng.choice(plans),
            "payment_method": DECLINING_CARD if declining else GOOD_CARD,
        }
        planned.append(Request(at, "signup", _key(rng, "signup", n), body, _resend(rng), declining))
    return sorted(planned, key=lambda request: request.at)


def _key(rng: random.Random, kind: str, n: int) -> str:
    return f"chaos-{kind}-{n}-{uuid.UUID(int=rng.getrandbits(128))}"


def _resend(rng: random.Random) -> str:
    if rng.random() >= RESENT_SHARE:
        return ""
    return rng.choice(["concurrent", "after"])


@dataclass
class Load:
    """Sends the planned requests at their times; `answers` fills as they come back."""

    web_url: str
    requests: list[Request]
    answers: list[Answer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sends(self) -> int:
        """Requests the clients will send, resends included: as many answers come back."""
        return sum(2 if request.resend else 1 for request in self.requests)

    def run(self, start: float, stopping: Callable[[], bool]) -> None:
        """Send every request at `start` (monotonic) + its time; returns once all are answered."""
        with ThreadPoolExecutor(CLIENTS, thread_name_prefix="client") as pool:
            for request in self.requests:
                while not stopping() and (wait := start + request.at - time.monotonic()) > 0:
                    time.sleep(min(0.05, wait))
                pool.submit(self._send_all, request)

    def _send_all(self, request: Request) -> None:
        if request.resend == "concurrent":
            # The client gave up waiting at once and sent it again while the first was still in flight.
            with ThreadPoolExecutor(2) as pair:
                first = pair.submit(self._send, request)
                time.sleep(0.05)
                pair.submit(self._send, request)
                first.result()
            return
        self._send(request)
        if request.resend == "after":
            time.sleep(1)  # the client's answer was lost; it retries a second later
            self._send(request)

    def _send(self, request: Request) -> None:
        path = "/api/orders" if request.kind == "order" else "/api/subscriptions"
        sent_at, begun = time.time(), time.monotonic()
        try:
            with requests.Session() as session:
                session.trust_env = False  # straight to the local web server, whatever proxy is set
                response = session.post(
                    self.web_url + path,
                    json=request.body,
                    headers={"Idempotency-Key": request.key},
                    timeout=CLIENT_TIMEOUT,
                )
            answer = Answer(
                request.kind,
                request.key,
                sent_at,
                time.monotonic() - begun,
                response.status_code,
                _resource_id(response),
                "" if response.ok else response.text[:200],
            )
        except requests.RequestException as exc:
            seconds = time.monotonic() - begun
            answer = Answer(request.kind, request.key, sent_at, seconds, None, error=repr(exc))
        with self._lock:
            self.answers.append(answer)


def failed(answers: list[Answer]) -> int:
    """Requests that got no answer or a 5xx: what the API promises not to give, even under faults."""
    return sum(answer.status is None or answer.status >= 500 for answer in answers)


def _resource_id(response: requests.Response) -> str:
    try:
        return str(response.json().get("id") or "")
    except ValueError:
        return ""
