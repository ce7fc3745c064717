"""Signed webhook delivery of Stripe events, with retries and the webhook faults.

Events are queued in the same transaction that creates them; one background thread posts them in
order. Faults: `outage` drops what is due (recorded as undelivered, never retried: the shop must
reconcile), `duplicate` sends extra copies, `shuffle` delivers each batch out of order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from typing import Any

from sandbox.store import Store
from sandbox.util import now_iso

MAX_ATTEMPTS = 6  # first try plus five retries, 0.5 s to 8 s apart: bounded, yet rides out a shop restart
BATCH = 100
SHUFFLE_WINDOW = 0.5  # with shuffle on, let events pile up so there is a batch to reorder
TIMEOUT = 10
# No proxies: deliveries go straight to the configured (local) URL.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def enqueue(store: Store, event_id: str) -> None:
    store.execute("INSERT INTO webhook_queue VALUES (?, 0, ?)", (event_id, time.time()))
    store.wake.set()


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """Stripe's `Stripe-Signature` scheme, as `stripe.Webhook.construct_event` verifies it."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliveries(store: Store) -> list[dict[str, Any]]:
    rows = store.execute(
        "SELECT event_id, type, status_code, attempt, error, at FROM webhook_deliveries ORDER BY rowid"
    )
    keys = ("event_id", "type", "status_code", "attempt", "error", "at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


class Deliverer(threading.Thread):
    def __init__(self, store: Store) -> None:
        super().__init__(name="webhooks", daemon=True)
        self.store = store
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.store.wake.set()
        self.join(timeout=TIMEOUT + 1)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:
                # Keep delivering after a surprise; a dead thread would silently end all webhooks.
                traceback.print_exc(file=sys.stderr)
                self._stopping.wait(1.0)

    def _step(self) -> None:
        # Clear before looking, so a wake-up set after the query is not lost.
        self.store.wake.clear()
        due, next_due = self._due()
        if due:
            self._deliver(due)
        else:
            self.store.wake.wait(min(max(next_due - time.time(), 0.05), 1.0) if next_due else 1.0)

    def _due(self) -> tuple[list[tuple[str, int, str]], float | None]:
        if self.store.faults["webhooks"]["shuffle"] and self._stopping.wait(SHUFFLE_WINDOW):
            return [], None
        now = time.time()
        with self.store.lock:
            rows = self.store.execute(
                "SELECT q.event_id, q.attempt, o.body FROM webhook_queue q "
                "JOIN objects o ON o.id = q.event_id WHERE q.due <= ? ORDER BY q.rowid LIMIT ?",
                (now, BATCH),
            )
            (next_due,) = self.store.execute("SELECT min(due) FROM webhook_queue")[0]
        return rows, next_due

    def _deliver(self, due: list[tuple[str, int, str]]) -> None:
        faults, config = self.store.faults["webhooks"], self.store.webhook
        delivered: dict[str, bool] = {event_id: False for event_id, _, _ in due}
        attempts = {event_id: attempt + 1 for event_id, attempt, _ in due}
        if config["url"] and not faults["outage"]:
            sends = [(event_id, body) for event_id, _, body in due for _ in range(1 + faults["duplicate"])]
            if faults["shuffle"]:
                _shuffle(sends)
            for event_id, body in sends:
                status, error = _post(config["url"], config["secret"] or "", body.encode())
                self._record(event_id, body, status, attempts[event_id], error)
                delivered[event_id] |= status is not None and 200 <= status < 300
        else:
            for event_id, _, body in due:
                self._record(
                    event_id, body, None, attempts[event_id], "dropped: webhook outage fault or no URL"
                )
        with self.store.transaction():
            for event_id, ok in delivered.items():
                attempt = attempts[event_id]
                # Without a URL or during an outage nothing is retried: those events are simply lost.
                if ok or attempt >= MAX_ATTEMPTS or not config["url"] or faults["outage"]:
                    self.store.execute("DELETE FROM webhook_queue WHERE event_id = ?", (event_id,))
                else:
                    retry_at = time.time() + 0.5 * 2 ** (attempt - 1)
                    self.store.execute(
                        "UPDATE webhook_queue SET attempt = ?, due = ? WHERE event_id = ?",
                        (attempt, retry_at, event_id),
                    )

    def _record(self, event_id: str, body: str, status: int | None, attempt: int, error: str | None) -> None:
        self.store.execute(
            "INSERT INTO webhook_deliveries VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, json.loads(body)["type"], status, attempt, error, now_iso()),
        )


def _shuffle(sends: list[Any]) -> None:
    """Shuffle so the order really differs: a random shuffle of two items keeps their order half the time."""
    original = list(sends)
    random.shuffle(sends)
    if sends == original:
        sends.reverse()


def _post(url: str, secret: str, payload: bytes) -> tuple[int | None, str | None]:
    request = urllib.request.Request(
        url,
        data=payload,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, secret, int(time.time())),
        },
    )
    try:
        with _opener.open(request, timeout=TIMEOUT) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, None
    except (OSError, ValueError) as error:  # ValueError: a URL urllib cannot even parse
        return None, str(error)
