"""jobkit.outside.call_concurrently: many outside calls in flight for one job, answers recorded as they
come back, and a failed call stopping the rest as a single failed call stops a job."""

from __future__ import annotations

import threading
import time

import pytest

from jobkit.breaker import CircuitBreaker, breaker_for
from jobkit.errors import Deferred, TransientError
from jobkit.outside import call_concurrently, outside_call
from jobkit.ratelimit import RateLimited


def test_keeps_up_to_threads_calls_in_flight_and_yields_every_answer():
    in_flight = threading.Barrier(4, timeout=10)  # broken, raising, unless 4 calls wait in it at once

    def call(n: int) -> int:
        in_flight.wait()
        return n * n

    lots = list(call_concurrently(call, list(range(8)), threads=4, start_within=60, yield_every=0.05))
    answers = [pair for lot in lots for pair in lot]
    assert sorted(answers) == [(n, n * n) for n in range(8)]


def test_the_first_failure_stops_new_calls_and_is_raised_after_the_answers_in_flight():
    started: list[int] = []
    both_in_flight = threading.Barrier(2, timeout=10)

    def call(n: int) -> int:
        started.append(n)
        both_in_flight.wait()
        if n == 0:
            raise TransientError("gateway 503")
        time.sleep(0.5)  # ends well after the failure, so no later call may start
        return n

    answered: list[tuple[int, int]] = []
    with pytest.raises(TransientError, match="503"):
        for lot in call_concurrently(call, list(range(20)), threads=2, start_within=60, yield_every=0.05):
            answered.extend(lot)
    assert answered == [(1, 1)]  # the call in flight beside the failing one
    assert sorted(started) == [0, 1]  # none started after the failure


def test_calls_not_started_in_time_are_left_to_a_deferral():
    def call(n: int) -> int:
        time.sleep(0.2)
        return n

    answered: list[tuple[int, int]] = []
    with pytest.raises(Deferred) as deferred:
        for lot in call_concurrently(call, list(range(10)), threads=1, start_within=0.1, yield_every=0.05):
            answered.extend(lot)
    assert deferred.value.retry_after == 0  # the job is sent again at once, its retries untouched
    assert 1 <= len(answered) < 10


def test_answers_back_within_an_interval_are_yielded_in_one_lot():
    def call(n: int) -> int:
        time.sleep(0.01 * n)  # back one after another, all within 0.2 s
        return n

    lots = list(call_concurrently(call, list(range(20)), threads=20, start_within=60, yield_every=5))
    assert [sorted(lot) for lot in lots] == [[(n, n) for n in range(20)]]


def test_an_answer_waits_at_most_an_interval_to_be_yielded():
    def call(n: int) -> int:
        time.sleep(0.1)
        return n

    lots = list(call_concurrently(call, list(range(12)), threads=1, start_within=60, yield_every=0.35))
    # 1.2 s of calls one after another: a lot about every third answer, not one per answer nor one at the end
    assert 3 <= len(lots) <= 6
    assert sorted(pair for lot in lots for pair in lot) == [(n, n) for n in range(12)]


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="yield_every"):
        list(call_concurrently(lambda n: n, [1], threads=1, start_within=60, yield_every=0))


def test_nothing_to_call():
    assert list(call_concurrently(lambda n: n, [], threads=4, start_within=60, yield_every=0.05)) == []


def test_a_call_the_service_refused_with_a_429_is_made_again_while_the_others_go_on():
    refused_once: set[int] = set()

    def call(n: int) -> int:
        if n % 3 == 0 and n not in refused_once:
            refused_once.add(n)
            raise RateLimited("gateway", 0.01, "the service answered 429", by_service=True)
        return n

    answers = [
        pair
        for lot in call_concurrently(call, list(range(9)), threads=3, start_within=60, yield_every=0.05)
        for pair in lot
    ]
    assert sorted(answers) == [(n, n) for n in range(9)]
    assert refused_once == {0, 3, 6}


def test_our_own_limiter_turning_a_call_away_defers_the_job():
    def call(n: int) -> int:
        raise RateLimited("payments", 3.0, "next turn in 3.00s at 25/s")

    with pytest.raises(RateLimited) as deferred:
        list(call_concurrently(call, list(range(4)), threads=2, start_within=60, yield_every=0.05))
    assert deferred.value.retry_after == 3.0


@pytest.fixture
def carrier_breaker(redis_url, settings, monkeypatch) -> list[str]:
    """The carrier's breaker (no rate limiter) on the test's Redis, its held permits good for a minute;
    returns the scripts it runs, one per round trip."""
    settings.REDIS_URL = redis_url
    breaker = breaker_for("carrier")
    breaker.reset()
    monkeypatch.setattr(breaker, "reuse_seconds", 60.0)
    scripts_run: list[str] = []
    run_script = CircuitBreaker._run
    monkeypatch.setattr(
        CircuitBreaker,
        "_run",
        lambda self, script, *args: scripts_run.append(script) or run_script(self, script, *args),
    )
    return scripts_run


def test_each_thread_holds_its_permit_for_its_next_calls_and_every_lease_ends(carrier_breaker):
    callers: set[int] = set()

    def call(n: int) -> int:
        with outside_call("carrier"):
            callers.add(threading.get_ident())
            return n

    answers = [
        pair
        for lot in call_concurrently(call, list(range(40)), threads=4, start_within=60, yield_every=0.05)
        for pair in lot
    ]

    assert sorted(answers) == [(n, n) for n in range(40)]
    # one admission per thread, its permit held for its next calls, and one report of them all at the end
    assert len(carrier_breaker) == len(callers) + 1
    state = breaker_for("carrier").snapshot()
    assert (state["allowed"], state["in_flight"], state["state"]) == (len(callers), 0, "closed")


def test_a_service_that_starts_failing_gets_at_most_one_more_call_per_held_permit(carrier_breaker):
    failed_calls = []

    def call(n: int) -> int:
        with outside_call("carrier"):
            if n >= 20:  # the service goes down
                failed_calls.append(n)
                raise TransientError("carrier unreachable")
            return n

    with pytest.raises(TransientError):
        for _ in call_concurrently(call, list(range(200)), threads=4, start_within=60, yield_every=0.05):
            pass

    assert 1 <= len(failed_calls) <= 4  # each thread's call that failed ended its calls
    state = breaker_for("carrier").snapshot()
    assert (state["failures"], state["in_flight"]) == (len(failed_calls), 0)
