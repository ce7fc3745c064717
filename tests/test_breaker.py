"""The shared circuit breaker (pattern 6), against a real redis-server and the embedded one.

No database: every test talks to a Redis server started for this module (`redis_url` in conftest.py).

No assertion races the clock: a duration that must not run out during a test is a minute long, one that
must run out is waited for by watching the breaker's state change, and times are only compared with
each other (the Redis server's clock, which the breaker itself uses).
"""

from __future__ import annotations

import itertools
import json
import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from devstack import processes
from devstack.processes import wait_until
from jobkit import breaker as breaker_module
from jobkit.breaker import SERVICES, CircuitBreaker, CircuitOpen, Permit, breaker_for
from tests.harness import run_in_processes

MakeBreaker = Callable[..., CircuitBreaker]


class ServiceDown(Exception):
    pass


class BadRequest(Exception):
    pass


@pytest.fixture
def client(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_breaker(client: Redis) -> Iterator[MakeBreaker]:
    """Breakers with names of their own, so no test sees another's state."""
    made: list[CircuitBreaker] = []

    def make(**config: Any) -> CircuitBreaker:
        made.append(CircuitBreaker(f"test-{uuid.uuid4().hex[:10]}", client, **config))
        return made[-1]

    yield make
    for breaker in made:
        breaker.reset()


def fail_once(breaker: CircuitBreaker) -> None:
    with pytest.raises(ServiceDown), breaker.guard():
        raise ServiceDown


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        fail_once(breaker)
    # The transition log, not the live state: a short cooldown may already be over.
    assert [(t["from"], t["to"]) for t in breaker.transitions(1)] == [("closed", "open")]


def wait_for_state(breaker: CircuitBreaker, state: str) -> None:
    """Watch the breaker until it is in `state` (a cooldown ending, a window moving on)."""
    wait_until(lambda: breaker.snapshot()["state"] == state, 10, f"breaker {breaker.name} to be {state}")


def server_time(client: Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def test_opens_after_exactly_the_threshold_and_rejects_every_call_while_open(make_breaker: MakeBreaker):
    breaker = make_breaker(failure_threshold=3, window_seconds=60, cooldown_seconds=60)
    for failures in (1, 2):
        fail_once(breaker)
        assert breaker.snapshot()["state"] == "closed", f"opened after {failures} failures"
    fail_once(breaker)

    snap = breaker.snapshot()
    assert snap["state"] == "open"
    assert snap["failures"] == 3
    assert snap["opened_at"] is not None
    calls, waits = 0, []
    for _ in range(5):
        with pytest.raises(CircuitOpen) as raised, breaker.guard():
            calls += 1
        assert raised.value.breaker == breaker.name
        waits.append(raised.value.retry_after)
    # Each caller is told to come back when the one cooldown ends: never later, and later callers sooner.
    assert all(0 < wait <= 60 for wait in waits)
    assert all(earlier > later for earlier, later in itertools.pairwise(waits))
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (copy.breaker, copy.retry_after, str(copy)) == (
        breaker.name,
        raised.value.retry_after,
        str(raised.value),
    )
    with pytest.raises(CircuitOpen):
        breaker.admit()
    assert calls == 0
    snap = breaker.snapshot()
    assert (snap["allowed"], snap["rejected"], snap["probes"]) == (3, 6, 0)
    assert 0 < snap["retry_after"] <= waits[-1]


def test_after_the_cooldown_exactly_one_concurrent_caller_is_the_probe(make_breaker: MakeBreaker):
    breaker = make_breaker(failure_threshold=2, cooldown_seconds=0.2, probe_timeout_seconds=60)
    open_breaker(breaker)
    wait_for_state(breaker, "half_open")

    callers = 8
    start = threading.Barrier(callers)
    probes, rejections = [], []

    def call() -> None:
        start.wait(10)
        try:
            probes.append(breaker.admit())
        except CircuitOpen as exc:
            rejections.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(probes) == 1 and probes[0].probe
    assert len(rejections) == callers - 1
    assert all(0 < exc.retry_after <= 0.2 for exc in rejections)
    assert breaker.snapshot()["state"] == "half_open"

    breaker.record_success(probes[0])
    snap = breaker.snapshot()
    assert (snap["state"], snap["failures"], snap["opened_at"]) == ("closed", 0, None)
    permit = breaker.admit()
    assert not permit.probe
    breaker.record_success(permit)
    # The count starts again from zero: one failure does not re-open a breaker with threshold 2.
    fail_once(breaker)
    assert breaker.snapshot()["state"] == "closed"


def test_a_failed_probe_reopens_with_a_fresh_cooldown(make_breaker: MakeBreaker):
    breaker = make_breaker(failure_threshold=2, cooldown_seconds=0.2)
    open_breaker(breaker)
    first_opened = breaker.snapshot()["opened_at"]
    wait_for_state(breaker, "half_open")

    with pytest.raises(ServiceDown), breaker.guard() as permit:
        assert permit.probe
        raise ServiceDown

    history = breaker.transitions()
    assert [(t["from"], t["to"], t["reason"]) for t in history[:2]] == [
        ("half_open", "open", "probe failed"),
        ("open", "half_open", "cooldown elapsed"),
    ]
    # The new cooldown counts from the failed probe, not from the first opening.
    reopened = breaker.snapshot()["opened_at"]
    assert reopened == history[0]["at"]
    assert reopened >= first_opened + 0.2


def test_a_probe_holding_its_lease_keeps_every_other_caller_out(make_breaker: MakeBreaker):
    breaker = make_breaker(failure_threshold=1, cooldown_seconds=0.1, probe_timeout_seconds=60)
    open_breaker(breaker)
    wait_for_state(breaker, "half_open")
    probe = breaker.admit()
    assert probe.probe
    for _ in range(3):
        with pytest.raises(CircuitOpen) as raised:
            breaker.admit()
        assert raised.value.state == "half_open"
        assert 0 < raised.value.retry_after <= 0.1  # never more than a cooldown, though the lease runs 60 s
    breaker.record_success(probe)
    assert breaker.snapshot()["state"] == "closed"


def test_a_probe_lease_expires_when_the_prober_never_reports(make_breaker: MakeBreaker):
    breaker = make_breaker(failure_threshold=1, cooldown_seconds=0.1, probe_timeout_seconds=0.3)
    open_breaker(breaker)
    wait_for_state(breaker, "half_open")
    lost = breaker.admit()  # its process dies: no report ever comes
    assert lost.probe

    second = wait_until_admitted(breaker)
    assert second.probe
    # The first prober's late report is stale: the lease is now the second probe's.
    breaker.record_success(lost)
    assert breaker.snapshot()["state"] == "half_open"
    breaker.record_success(second)
    assert breaker.snapshot()["state"] == "closed"
    assert breaker.snapshot()["probes"] == 2


def wait_until_admitted(breaker: CircuitBreaker) -> Permit:
    """Ask again each time the breaker says to come back, until it admits the call."""
    for _ in range(200):
        try:
            return breaker.admit()
        except CircuitOpen as exc:
            time.sleep(exc.retry_after)
    raise AssertionError(f"{breaker.name} never admitted a call: {breaker.snapshot()}")


def test_failures_outside_the_window_do_not_add_up(make_breaker: MakeBreaker):
    breaker = make_breaker(failure_threshold=3, window_seconds=0.3, cooldown_seconds=60)
    fail_once(breaker)
    fail_once(breaker)
    wait_until(lambda: breaker.snapshot()["failures"] == 0, 10, "the failures to leave the window")
    fail_once(breaker)
    fail_once(breaker)  # four failures in all, but never three within the window
    assert breaker.snapshot()["state"] == "closed"
    assert breaker.transitions() == []


def test_exceptions_that_do_not_count_never_open_the_breaker(make_breaker: MakeBreaker):
    breaker = make_breaker(failure_threshold=2, cooldown_seconds=0.1, probe_timeout_seconds=30)

    def blames_service(exc: BaseException) -> bool:
        return not isinstance(exc, BadRequest)

    for _ in range(10):
        with pytest.raises(BadRequest), breaker.guard(blames_service):
            raise BadRequest
    with pytest.raises(KeyboardInterrupt), breaker.guard():
        raise KeyboardInterrupt  # an interrupted worker says nothing about the service
    snap = breaker.snapshot()
    assert (snap["state"], snap["failures"], snap["in_flight"], snap["allowed"]) == ("closed", 0, 0, 11)

    # In half-open, a probe that ends with a bad request hands its lease back at once.
    open_breaker(breaker)
    wait_for_state(breaker, "half_open")
    with pytest.raises(BadRequest), breaker.guard(blames_service) as permit:
        assert permit.probe
        raise BadRequest
    assert breaker.snapshot()["state"] == "half_open"
    assert breaker.admit().probe


def test_calls_in_flight_count_against_the_budget_once_a_failure_shows(make_breaker: MakeBreaker):
    breaker = make_breaker(
        failure_threshold=3, window_seconds=60, cooldown_seconds=5, probe_timeout_seconds=60
    )
    healthy = [breaker.admit() for _ in range(10)]  # no failure yet: no limit
    for permit in healthy:
        breaker.record_success(permit)

    fail_once(breaker)
    in_flight = [breaker.admit(), breaker.admit()]
    with pytest.raises(CircuitOpen) as raised:
        breaker.admit()  # 1 failure + 2 in flight: the budget of 3 is spoken for
    assert raised.value.state == "closed"
    assert 0 < raised.value.retry_after <= 5  # never more than a cooldown
    assert breaker.snapshot()["in_flight"] == 2

    breaker.record_success(in_flight[0])
    breaker.record_success(breaker.admit())  # a slot came back
    fail_once(breaker)  # 2 failures + 1 in flight
    with pytest.raises(CircuitOpen):
        breaker.admit()
    breaker.record_failure(in_flight[1])
    assert breaker.snapshot()["state"] == "open"
    assert breaker.snapshot()["failures"] == 3


def test_calls_of_a_dead_process_stop_counting_when_their_lease_ends(make_breaker: MakeBreaker):
    breaker = make_breaker(
        failure_threshold=3, window_seconds=60, cooldown_seconds=60, probe_timeout_seconds=0.3
    )
    fail_once(breaker)
    lost = [breaker.admit(), breaker.admit()]  # their process dies: no report ever comes
    wait_until(lambda: breaker.snapshot()["in_flight"] == 0, 10, "the leases of the lost calls to end")
    breaker.record_success(breaker.admit())  # the budget is free again
    fail_once(breaker)
    fail_once(breaker)
    assert breaker.snapshot()["state"] == "open"
    breaker.record_failure(lost[0])  # a report from before opening changes nothing
    assert breaker.snapshot()["failures"] == 3


# --- many processes, one breaker ---------------------------------------------------------------------------
PROCESSES = 4
SHARED = {
    "failure_threshold": 5,
    "window_seconds": 30.0,
    "cooldown_seconds": 0.1,
    "probe_timeout_seconds": 5.0,
}


PROBES = 3  # half-open rounds to watch


def hammer(url: str, name: str, barrier: Any) -> None:
    """One worker process calling an always-failing service through the shared breaker, until the
    processes together have seen PROBES probes (or, if the breaker never lets one through, 30 s)."""
    client = Redis.from_url(url)
    breaker = CircuitBreaker(name, client, **SHARED)
    barrier.wait(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and int(client.get(f"{name}:probes") or 0) < PROBES:
        try:
            with breaker.guard() as permit:
                started = server_time(client)
                time.sleep(0.02 if permit.probe else 0.005)  # a slow call gives others time to overlap it
                call = {"probe": permit.probe, "start": started, "end": server_time(client)}
                client.rpush(f"{name}:calls", json.dumps(call))
                if permit.probe:
                    client.incr(f"{name}:probes")
                raise ServiceDown
        except ServiceDown:
            pass
        except CircuitOpen as exc:
            time.sleep(min(exc.retry_after, 0.003))


def test_the_breaker_is_shared_by_every_process(redis_url: str, client: Redis):
    name = f"test-shared-{uuid.uuid4().hex[:10]}"
    breaker = CircuitBreaker(name, client, **SHARED)
    try:
        run_in_processes(hammer, (redis_url, name), PROCESSES)
        calls = [json.loads(raw) for raw in client.lrange(f"{name}:calls", 0, -1)]
        first_open = breaker.transitions(limit=100)[-1]
        assert (first_open["from"], first_open["to"]) == ("closed", "open")
        before_open = [call for call in calls if not call["probe"]]
        assert len(before_open) == SHARED["failure_threshold"]  # not threshold x processes
        assert all(call["end"] <= first_open["at"] for call in before_open)

        probes = sorted((call for call in calls if call["probe"]), key=lambda call: call["start"])
        assert len(probes) >= PROBES, "the breaker stopped letting probes through"
        for earlier, later in itertools.pairwise(probes):
            assert later["start"] >= earlier["end"], f"probes overlap: {earlier} and {later}"

        snap = breaker.snapshot()
        assert snap["allowed"] == len(calls)
        assert snap["probes"] == len(probes)
        assert snap["rejected"] > 0
    finally:
        client.delete(f"{name}:calls", f"{name}:probes")
        breaker.reset()


# --- history and ops page ----------------------------------------------------------------------------------
def test_transitions_are_recorded_in_order_and_shown_by_the_snapshot(
    make_breaker: MakeBreaker, caplog: pytest.LogCaptureFixture
):
    breaker = make_breaker(failure_threshold=1, cooldown_seconds=0.1)
    caplog.set_level(logging.INFO, logger="jobkit.breaker")
    fail_once(breaker)
    wait_for_state(breaker, "half_open")
    with breaker.guard() as permit:
        assert permit.probe

    history = breaker.transitions()
    assert [(t["from"], t["to"]) for t in history] == [
        ("half_open", "closed"),
        ("open", "half_open"),
        ("closed", "open"),
    ]
    assert [t["reason"] for t in history] == [
        "probe succeeded",
        "cooldown elapsed",
        "failure 1 of 1 within 30s",
    ]
    assert history[0]["at"] >= history[1]["at"] >= history[2]["at"] + 0.1
    snap = breaker.snapshot()
    assert snap["transitions"] == history
    assert snap | {"transitions": None} == {
        "name": breaker.name,
        "state": "closed",
        "failures": 0,
        "in_flight": 0,
        "opened_at": None,
        "retry_after": 0.0,
        "allowed": 2,
        "rejected": 0,
        "probes": 1,
        "transitions": None,
    }
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "jobkit.breaker"]
    assert logged == [
        (logging.WARNING, f"circuit {breaker.name}: closed -> open (failure 1 of 1 within 30s)"),
        (logging.INFO, f"circuit {breaker.name}: open -> half_open (cooldown elapsed)"),
        (logging.INFO, f"circuit {breaker.name}: half_open -> closed (probe succeeded)"),
    ]


def test_the_transition_history_is_capped(make_breaker: MakeBreaker):
    breaker = make_breaker(failure_threshold=1, cooldown_seconds=0.001)
    for _ in range(40):  # three transitions a round
        fail_once(breaker)
        time.sleep(0.002)
        with breaker.guard():
            pass
    assert breaker.redis.llen(f"breaker:{breaker.name}:transitions") == 100
    assert len(breaker.transitions(limit=500)) == 100
    assert [t["to"] for t in breaker.transitions(limit=3)] == ["closed", "half_open", "open"]


def test_works_with_a_decoding_client(redis_url: str):
    client = Redis.from_url(redis_url, decode_responses=True)
    breaker = CircuitBreaker(f"test-{uuid.uuid4().hex[:10]}", client, failure_threshold=1)
    try:
        fail_once(breaker)
        assert breaker.snapshot()["state"] == "open"
        assert breaker.transitions()[0]["to"] == "open"
    finally:
        breaker.reset()
        client.close()


# --- configuration -----------------------------------------------------------------------------------------
def test_breaker_for_builds_from_settings_and_caches_the_client_per_url(settings: Any):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CIRCUIT_BREAKERS = {"payments": {"failure_threshold": 2, "cooldown_seconds": 1.5}}
    payments, carrier = breaker_for("payments"), breaker_for("carrier")
    assert (payments.name, payments.failure_threshold, payments.cooldown_seconds) == ("payments", 2, 1.5)
    assert payments.window_seconds == 30.0
    assert (carrier.failure_threshold, carrier.cooldown_seconds) == (5, 10.0)  # the constructor's defaults
    assert payments.redis is carrier.redis

    del settings.CIRCUIT_BREAKERS
    assert breaker_for("mail").failure_threshold == 5
    settings.REDIS_URL = "redis://127.0.0.1:2/0"
    assert breaker_for("mail").redis is not payments.redis
    assert breaker_for("mail").redis.connection_pool.connection_kwargs["port"] == 2
    assert SERVICES == ("payments", "carrier", "mail")
    assert breaker_module.state_client("redis://127.0.0.1:1/0") is payments.redis


@pytest.fixture
def doomed_redis(tmp_path: Path) -> Iterator[tuple[processes.Child, str]]:
    """A Redis server of this test's own, for the test to stop while a call is in flight."""
    child, url = processes.start_redis(tmp_path, processes.free_port())
    yield child, url
    child.stop()


def test_a_call_that_ended_keeps_its_outcome_when_the_breaker_cannot_record_it(
    doomed_redis: tuple[processes.Child, str],
):
    server, url = doomed_redis
    breaker = CircuitBreaker(f"test-{uuid.uuid4().hex[:10]}", Redis.from_url(url, socket_connect_timeout=1))

    with breaker.guard() as permit:
        server.stop()  # the store goes away while the call is made
    # the call succeeded: no Redis error is raised in its place (an email sent must not be sent again)
    assert not permit.probe

    server.start()
    wait_until(lambda: processes.redis_ping(url), 20, "the Redis server again", server)
    with pytest.raises(ServiceDown), breaker.guard():
        server.stop()
        raise ServiceDown("503")  # the call's own failure is what the caller sees, not the store's


def test_only_a_closed_state_call_of_its_own_can_be_handed_in_with_the_next_admission(
    make_breaker: MakeBreaker,
):
    breaker, other = make_breaker(), make_breaker()
    first = breaker.admit()
    second = breaker.admit(settled=first)  # first's success goes in with this admission: its lease ends
    assert breaker.snapshot()["in_flight"] == 1
    with pytest.raises(ValueError):
        other.admit(settled=second)  # another breaker's call
    probe = Permit(breaker.name, "probe-token", probe=True)
    with pytest.raises(ValueError):
        breaker.admit(settled=probe)  # a probe's success closes the breaker: reported at once, never so
    breaker.record_successes([second])
    assert breaker.snapshot()["in_flight"] == 0


def test_a_held_permit_serves_its_holders_next_calls_while_good_then_goes_in_with_the_next_admission(
    make_breaker: MakeBreaker, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(breaker_module, "PERMIT_REUSE_SECONDS", 60.0)
    lasting = make_breaker(cooldown_seconds=300, probe_timeout_seconds=300)  # good for a minute
    with lasting.guard(report_success=False) as first:
        pass
    with lasting.guard(held=first, report_success=False) as again:
        pass
    assert again == first  # run on the held permit: no round trip to the breaker
    state = lasting.snapshot()
    assert (state["allowed"], state["in_flight"]) == (1, 1)  # still a call in flight while held

    short = make_breaker(cooldown_seconds=0.2)  # good for under half the cooldown: 0.1 s
    with short.guard(report_success=False) as old:
        pass
    wait_until(lambda: not old.reusable(), 10, "the held permit to go stale")
    with short.guard(held=old, report_success=False) as new:
        pass
    assert new != old
    state = short.snapshot()
    assert (state["allowed"], state["in_flight"]) == (2, 1)  # old's lease ended with new's admission


def test_after_the_breaker_opened_elsewhere_a_held_permit_serves_at_most_its_reuse_time(
    make_breaker: MakeBreaker,
):
    breaker = make_breaker(failure_threshold=1, cooldown_seconds=10)  # a held permit is good for 1 s
    with breaker.guard(report_success=False) as held:
        pass
    other = breaker.admit()  # another process's call, which fails and opens the breaker
    breaker.record_failure(other)
    assert breaker.snapshot()["state"] == "open"
    wait_until(lambda: not held.reusable(), 10, "the held permit to go stale")
    with pytest.raises(CircuitOpen), breaker.guard(held=held):  # asks the breaker again: open
        pytest.fail("a stale permit was used while the breaker was open")
    assert breaker.snapshot()["rejected"] == 1


def test_a_probe_permit_is_never_held():
    assert not Permit("payments", "token", probe=True, good_until=time.monotonic() + 60).reusable()
