"""Calls to outside services: one breaker per service and one classification of what goes wrong.

Every client (payment gateway, carrier, mail) makes each call inside `outside_call(service)`, and turns
a failed call into one of three facts about the answer it got, which this module alone decides about:

| what came back                                   | decision            | counts as an outage |
|--------------------------------------------------|---------------------|---------------------|
| no answer: refused, reset, dropped, timed out    | retry               | yes                 |
| HTTP 5xx or 408                                  | retry               | yes                 |
| HTTP 409 (the same Idempotency-Key is in flight) | deferred            | no                  |
| HTTP 429 (rate limited)                          | deferred            | no                  |
| any other HTTP 4xx                               | dead letter         | no                  |
| SMTP 421 or 451 (the server itself failing)      | retry               | yes                 |
| any other SMTP 4xx (mailbox busy, ...)           | retry               | no                  |
| SMTP 5xx (refused for good)                      | dead letter         | no                  |

"Retry" is the job's own retry policy (`jobkit.tasks`): exactly one retry layer decides for job calls,
so clients make a single attempt per call (no SDK-level retries) with a timeout below the task's soft
time limit. Only outages count towards opening the service's circuit breaker: a 409 or a 429 says the
service is healthy and busy, and a 4xx says our request was wrong.

"Deferred" is a 429: the service did not run the call and says "not now", like our own rate limiter
(`jobkit.ratelimit`), which every call of a service with a limit takes a turn from first. It raises
`RateLimited`, so the job is sent again a second later (the window Stripe counts calls in) without
spending a retry, and the limiter slows down. A 409 is deferred too: our own earlier request with that
key is still running at the service (a call we gave up on at its timeout can run on there for seconds),
so the job waits for it to end and then gets its answer, instead of spending a retry on every knock.

Text an outside service sends us (a decline message, an id) goes into our columns through `fit`, so a
longer value than we expected never makes the recording transaction fail again and again.

A job with many calls to make (a billing batch) keeps several in flight with `call_concurrently`; each
still goes through `outside_call`, and the job still decides about a failed one as about a single call,
but for a 429: that call alone is made again in its next turn, while the others go on. There each
thread holds on to its last call's permit while that call succeeded, and runs its next calls on it for
up to a second (`jobkit.breaker.PERMIT_REUSE_SECONDS`), then hands its success in with its next
admission; the last ones go in together at the end: an admission a second per thread, not one per
call (`make bench`, billing against a local gateway: some 700 a second before).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ALL_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

from django.db.models import Model

from jobkit.breaker import CircuitOpen, Permit, breaker_for
from jobkit.errors import Deferred, PermanentError, TransientError, is_outage
from jobkit.ratelimit import RateLimited, limiter_for

# Stripe counts calls per second: after a 429, the next window starts within a second.
RATE_LIMITED_RETRY_AFTER_SECONDS = 1.0
# After a 409 (the same key in flight): look again in a second; the request in flight ends within the
# service's own time limit, and JOB_DEFER_DEADLINE_SECONDS bounds the wait in any case.
KEY_IN_FLIGHT_RETRY_AFTER_SECONDS = 1.0
# SMTP 4xx replies that mean the server itself is failing (RFC 5321: 421 closing, 451 local error).
_SMTP_OUTAGE = {421, 451}


@contextmanager
def outside_call(service: str) -> Iterator[Permit]:
    """Run one call to `service` in its turn from the rate limiter, if it has one, under its breaker.

    A turn too far off raises RateLimited and an open breaker raises CircuitOpen, before anything is
    sent. The turn comes first and the breaker is asked after any wait for it, right before the call: a
    breaker asked first would let every call already waiting for its turn through after it opened (the
    fault campaign counted 64 such calls to a down gateway). So a call the breaker turns away has taken a
    turn, which costs nothing while the service is not being called. A 429 (RateLimited from the block)
    slows the limiter down and counts for the breaker as no failure.

    A failed probe raises CircuitOpen too. The half-open breaker lets one call through to test the
    service; when the outage goes on, the breaker opens again, and the job that probed waits for the next
    probe like every other job (until JOB_DEFER_DEADLINE_SECONDS), instead of spending a retry on each:
    with no other traffic one job takes every probe, and would die a few cooldowns into the outage.
    """
    limiter = limiter_for(service)
    breaker = breaker_for(service)
    probe = False
    if limiter is not None:
        limiter.acquire()  # sleeps for a near turn
    held: _HeldPermits | None = getattr(_this_thread, "held", None)
    try:
        with breaker.guard(
            is_outage, held=held.take(service) if held else None, report_success=held is None
        ) as permit:
            probe = permit.probe
            try:
                yield permit
            except RateLimited:
                if limiter is not None:
                    limiter.slow_down()
                raise
    except Exception as exc:
        if probe and is_outage(exc):
            raise CircuitOpen(service, breaker.cooldown_seconds) from exc
        raise
    if held is not None and not probe:
        held.keep(permit)


_this_thread = threading.local()  # .held: the _HeldPermits of the call_concurrently running here


class _HeldPermits:
    """The permits of closed-state calls made by one `call_concurrently` that succeeded, not reported
    yet: at most one per thread and service, which that thread's next call runs on again while it is
    good (`jobkit.breaker.Permit.reusable`), else hands in with its admission; at the end, together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[int, str], Permit] = {}

    def take(self, service: str) -> Permit | None:
        with self._lock:
            return self._held.pop((threading.get_ident(), service), None)

    def keep(self, permit: Permit) -> None:
        with self._lock:
            self._held[(threading.get_ident(), permit.breaker)] = permit

    def report(self) -> None:
        with self._lock:
            held, self._held = list(self._held.values()), {}
        by_service: dict[str, list[Permit]] = defaultdict(list)
        for permit in held:
            by_service[permit.breaker].append(permit)
        for service, permits in by_service.items():
            breaker_for(service).record_successes(permits)  # a Redis error is logged there, not raised


Item = TypeVar("Item")
Answer = TypeVar("Answer")


# A pool of threads per process and size, kept from job to job: each thread keeps its HTTP session (the
# gateway client's is per thread), so its connection to the service too. A pool per job started its
# threads again and opened a connection per thread for every billing batch (py-spy on a billing worker:
# a tenth of its time in thread starts and TCP connects). Only a job's own thread asks for one, one job
# at a time per worker process, so the cache needs no lock of its own.
@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="outside-call")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of its parent's threads


class _NotStarted(Exception):
    """A call skipped because an earlier one failed."""


def call_concurrently(
    call: Callable[[Item], Answer],
    items: Sequence[Item],
    *,
    threads: int,
    start_within: float,
    yield_every: float,
) -> Iterator[list[tuple[Item, Answer]]]:
    """Make `call(item)` for every item, up to `threads` at a time, and yield their answers in lots, for
    the caller to record each lot in one transaction: every `yield_every` seconds, those that came back
    since the last lot, and the last lot once no call is left. A lot per interval rather than per answer
    bounds what recording costs however fast the service answers: each lot is a transaction of a few
    statements, whatever its size.

    The calls run in a pool of threads, so `call` must not touch the database (Django's connections are
    per thread): build what it needs before, and record what it returns, in the caller's thread.

    The first call that raises stops new calls from starting; once the calls in flight have ended and
    their answers were yielded, its exception is raised, for the job to decide about as about a single
    call (defer, retry or dead letter). Calls not started within `start_within` seconds are not made
    either: a `Deferred` then sends the job again at once to make them, rather than let it run into the
    task's time limit.

    Except a call the service refused with a 429: the service made nothing, and `outside_call` has
    slowed the limiter down, so this thread waits out the service's window and makes the call again in
    its next turn of the slower limiter, while the other threads go on. Deferring the whole job instead
    would stop every call in flight for a second or more at each 429, which a limit set a little above
    the service's brings every few seconds.
    """
    if yield_every <= 0:
        raise ValueError("yield_every must be positive")
    if not items:
        return
    stop = threading.Event()
    deadline = time.monotonic() + start_within
    held = _HeldPermits()

    def guarded(item: Item) -> Answer:
        _this_thread.held = held
        if stop.is_set():
            raise _NotStarted
        if time.monotonic() > deadline:
            stop.set()
            raise Deferred(f"calls not started within {start_within:g}s are left for the job's next run", 0)
        while True:
            try:
                return call(item)
            except RateLimited as refused:
                if refused.by_service and not stop.is_set() and time.monotonic() <= deadline:
                    time.sleep(refused.retry_after)  # paces it too where we keep no limiter
                    continue
                stop.set()
                raise
            except BaseException:
                stop.set()
                raise

    futures = {_pool(threads).submit(guarded, item): item for item in items}
    first_error: BaseException | None = None
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=yield_every, return_when=ALL_COMPLETED)
            answered = []
            for future in done:
                error = future.exception()
                if error is None:
                    answered.append((futures[future], future.result()))
                elif not isinstance(error, _NotStarted):
                    first_error = first_error or error
            if answered:
                yield answered
    finally:
        # Also when the caller stops early (a time limit, a failed recording): no call starts after it.
        stop.set()
        for future in futures:
            future.cancel()  # those not started yet
        held.report()
    if first_error is not None:
        raise first_error


def no_answer(service: str, detail: object) -> TransientError:
    """The call got no answer: refused, reset, dropped after sending, or timed out."""
    return TransientError(f"{service} unreachable: {detail}")


def http_error(service: str, status: int, detail: object) -> TransientError | PermanentError | Deferred:
    """The decision for an HTTP error status."""
    text = f"{service} {status}: {detail}"
    if status >= 500 or status == 408:
        return TransientError(text)
    if status == 409:
        return Deferred(f"{text} (the same Idempotency-Key is in flight)", KEY_IN_FLIGHT_RETRY_AFTER_SECONDS)
    if status == 429:
        return RateLimited(
            service, RATE_LIMITED_RETRY_AFTER_SECONDS, f"the service answered {text}", by_service=True
        )
    return PermanentError(f"{service} refused the request: {text}")


def smtp_error(service: str, code: int, detail: object) -> TransientError | PermanentError:
    """The decision for a negative SMTP reply."""
    text = f"{service} {code}: {detail}"
    if code >= 500:
        return PermanentError(f"{service} refused the message: {text}")
    return TransientError(text, outage=code in _SMTP_OUTAGE)


def fit(model: type[Model], field: str, text: str) -> str:
    """Text from an outside service, cut to fit `model.field`: the service decides its length, not us.

    Only for prose (messages, codes). Ids are never cut, since a cut id names nothing: their columns hold
    255 characters, Stripe's documented upper bound for object ids, which the carrier's ids stay within.
    """
    limit = model._meta.get_field(field).max_length
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
