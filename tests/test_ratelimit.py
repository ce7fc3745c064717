"""The shared rate limiter (the breaker's sibling), against a real redis-server and the embedded one.

No database: every test talks to a Redis server started for this module (`redis_url` in conftest.py).

Assertions count calls, never race the clock: a bound that must hold is "no more than rate x time +
burst granted" over a span measured around the calls (a slow machine only widens the span, which makes
the bound easier to meet), and a wait that must show is made seconds long.
"""

from __future__ import annotations

import pickle
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from redis import Redis

from devstack.processes import wait_until
from jobkit import ratelimit
from jobkit.breaker import CircuitOpen, breaker_for
from jobkit.errors import Deferred
from jobkit.outside import http_error, outside_call
from jobkit.ratelimit import RateLimited, RateLimiter, limiter_for
from tests.harness import run_in_processes

MakeLimiter = Callable[..., RateLimiter]


@pytest.fixture
def client(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_limiter(client: Redis) -> Iterator[MakeLimiter]:
    """Limiters with names of their own, so no test sees another's state."""
    made: list[RateLimiter] = []

    def make(**config: Any) -> RateLimiter:
        made.append(RateLimiter(f"test-{uuid.uuid4().hex[:10]}", client, **config))
        return made[-1]

    yield make
    for limiter in made:
        limiter.reset()


def server_time(client: Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


# --- many processes, one limiter -----------------------------------------------------------------------
PROCESSES = 4
TURNS_EACH = 15
SHARED = {"rate_per_second": 20.0, "burst": 3, "max_wait_seconds": 30.0}


def take_turns(url: str, name: str, barrier: Any) -> None:
    """One process taking TURNS_EACH turns from the shared limiter, recording when it started and ended
    on the Redis server's clock (the one the limiter uses)."""
    client = Redis.from_url(url)
    limiter = RateLimiter(name, client, **SHARED)
    barrier.wait(30)
    client.rpush(f"{name}:starts", server_time(client))
    for _ in range(TURNS_EACH):
        limiter.acquire()
    client.rpush(f"{name}:ends", server_time(client))


def test_processes_sharing_one_limiter_get_no_more_than_rate_x_time_plus_burst(redis_url: str, client: Redis):
    name = f"test-shared-{uuid.uuid4().hex[:10]}"
    limiter = RateLimiter(name, client, **SHARED)
    try:
        run_in_processes(take_turns, (redis_url, name), PROCESSES)
        starts = [float(t) for t in client.lrange(f"{name}:starts", 0, -1)]
        ends = [float(t) for t in client.lrange(f"{name}:ends", 0, -1)]
        granted = PROCESSES * TURNS_EACH
        span = max(ends) - min(starts)  # every turn was granted inside it
        # One limiter for all four: each process limiting on its own would grant 4 x rate.
        assert granted <= SHARED["rate_per_second"] * span + SHARED["burst"]
        snap = limiter.snapshot()
        assert (snap["granted"], snap["deferred"]) == (granted, 0)
    finally:
        client.delete(f"{name}:starts", f"{name}:ends")
        limiter.reset()


def test_threads_of_one_process_queue_for_their_turns_one_at_a_time(make_limiter: MakeLimiter):
    # Eight threads against a 0.3 s bound at 10/s: all in the shared queue at once, the last would be
    # 0.8 s away and deferred. Taking turns one at a time, none waits in it for more than 0.1 s.
    limiter = make_limiter(rate_per_second=10.0, max_wait_seconds=0.3)
    threads, turns_each = 8, 3
    deferred: list[RateLimited] = []

    def take_turns() -> None:
        for _ in range(turns_each):
            try:
                limiter.acquire()
            except RateLimited as exc:
                deferred.append(exc)

    started = server_time(limiter.redis)
    workers = [threading.Thread(target=take_turns) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    span = server_time(limiter.redis) - started
    assert deferred == []
    assert threads * turns_each <= 10.0 * span + 1
    assert limiter.snapshot()["granted"] == threads * turns_each


# --- a turn too far off ----------------------------------------------------------------------------------
def test_a_turn_further_off_than_the_bound_is_deferred_and_not_reserved(make_limiter: MakeLimiter):
    limiter = make_limiter(rate_per_second=0.1, max_wait_seconds=1.0)  # a turn every 10 s
    assert limiter.acquire() == 0  # idle: at once

    with pytest.raises(RateLimited) as first:
        limiter.acquire()
    assert isinstance(first.value, Deferred)  # the job is sent again, its retries untouched
    assert 1.0 < first.value.retry_after <= 10.0
    with pytest.raises(RateLimited) as second:
        limiter.acquire()
    # nothing was reserved for the first refusal: the second is told to come back no later
    assert second.value.retry_after <= first.value.retry_after
    copy = pickle.loads(pickle.dumps(second.value))
    assert (copy.service, copy.retry_after, str(copy)) == (
        limiter.name,
        second.value.retry_after,
        str(second.value),
    )
    snap = limiter.snapshot()
    assert (snap["granted"], snap["deferred"]) == (1, 2)
    assert snap["queued_seconds"] <= 10.0


def test_burst_turns_are_granted_at_once_then_spaced(make_limiter: MakeLimiter):
    limiter = make_limiter(rate_per_second=0.1, burst=3, max_wait_seconds=1.0)
    assert [limiter.acquire() for _ in range(3)] == [0, 0, 0]
    with pytest.raises(RateLimited):
        limiter.acquire()


# --- 429s ------------------------------------------------------------------------------------------------
def test_a_429_takes_a_quarter_off_the_rate_once_per_hold_down_to_the_floor(make_limiter: MakeLimiter):
    held = make_limiter(rate_per_second=8.0, hold_seconds=60.0, recovery_seconds=3600.0)
    held.slow_down()
    held.slow_down()  # within the hold: the same overshoot, reported by another call
    snap = held.snapshot()
    assert 6.0 <= snap["rate"] < 6.1
    assert (snap["rate_limited"], snap["slowdowns"]) == (2, 1)

    limiter = make_limiter(rate_per_second=8.0, hold_seconds=0, recovery_seconds=3600.0)
    rates = []
    for _ in range(9):
        limiter.slow_down()
        rates.append(round(limiter.snapshot()["rate"], 1))
    assert rates == [6.0, 4.5, 3.4, 2.5, 1.9, 1.4, 1.1, 1.0, 1.0]  # never below MIN_RATE_PER_SECOND


def test_the_slowed_rate_spaces_the_turns(make_limiter: MakeLimiter):
    limiter = make_limiter(rate_per_second=0.2, min_rate_per_second=0.01, max_wait_seconds=1.0)
    limiter.slow_down()  # 0.2/s -> 0.15/s: a turn every 6.7 s instead of 5
    limiter.acquire()
    with pytest.raises(RateLimited) as refused:
        limiter.acquire()
    assert refused.value.retry_after > 6.0


def test_the_rate_climbs_back_after_a_slow_down(make_limiter: MakeLimiter):
    limiter = make_limiter(rate_per_second=8.0, recovery_seconds=0.5)
    limiter.slow_down()
    assert limiter.snapshot()["rate"] < 8.0
    wait_until(lambda: limiter.snapshot()["rate"] == 8.0, 10, "the rate to climb back to 8/s")


# --- wired into every outside call ------------------------------------------------------------------------
@pytest.fixture
def payments(redis_url: str, settings: Any) -> Iterator[RateLimiter]:
    settings.REDIS_URL = redis_url
    settings.RATE_LIMITS = {"payments": 0.1}  # a turn every 10 s
    limiter = limiter_for("payments")
    assert limiter is not None
    limiter.reset()
    breaker_for("payments").reset()
    yield limiter
    limiter.reset()
    breaker_for("payments").reset()


def test_a_429_slows_the_limiter_and_is_no_failure_for_the_breaker(payments: RateLimiter):
    with pytest.raises(RateLimited), outside_call("payments"):
        raise http_error("gateway", 429, "Request rate limit exceeded")
    assert payments.snapshot()["slowdowns"] == 1
    breaker = breaker_for("payments").snapshot()
    assert (breaker["state"], breaker["failures"], breaker["in_flight"]) == ("closed", 0, 0)


def test_a_call_without_a_near_turn_is_not_made(payments: RateLimiter):
    with outside_call("payments"):
        pass  # takes the turn: the next one is 10 s away
    calls = []
    with pytest.raises(RateLimited), outside_call("payments"):
        calls.append("made")
    assert calls == []
    assert payments.snapshot()["slowdowns"] == 0  # our own refusal is no 429
    assert breaker_for("payments").snapshot()["in_flight"] == 0  # its permit was handed back


def test_a_breaker_that_opens_while_a_call_waits_for_its_turn_turns_the_call_away(
    payments: RateLimiter, settings: Any
):
    settings.RATE_LIMITS = {"payments": 1.0}  # a turn every second, so the second call waits for its turn
    with outside_call("payments"):
        pass
    calls: list[str] = []

    def second_call() -> None:
        with outside_call("payments"):
            calls.append("made")

    waiting = ThreadPoolExecutor(max_workers=1).submit(second_call)
    wait_until(lambda: payments.snapshot()["granted"] == 2, 5, "the second call to take its turn")
    breaker = breaker_for("payments")
    for _ in range(breaker.failure_threshold):  # the gateway fails for other callers meanwhile
        breaker.record_failure(breaker.admit())
    assert breaker.snapshot()["state"] == "open"
    with pytest.raises(CircuitOpen):
        waiting.result(timeout=5)
    assert calls == []  # asked right before the call, not before the wait: nothing reached the gateway


def test_limiter_for_builds_from_settings(settings: Any):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.RATE_LIMITS = {"payments": 25.0, "carrier": 0}
    payments = limiter_for("payments")
    assert payments is not None and payments.rate_per_second == 25.0
    assert payments.max_wait_seconds == ratelimit.MAX_WAIT_SECONDS
    assert limiter_for("carrier") is None  # 0: no limit
    assert limiter_for("mail") is None  # not listed: no limit
