"""A rate limiter shared by every worker process on every host (the circuit breaker's sibling).

A gateway limits how many requests an account may make per second (Stripe: 25 in test mode, 100 in
live mode) and answers the rest with HTTP 429. A limit kept in one process's memory lets N processes
make N times the calls; one that only reacts to 429s spends requests to learn what it already knows.
This one keeps its state in Redis, one hash per limiter (`ratelimit:<name>`), changed only inside Lua
scripts timed by the Redis server clock, like `jobkit.breaker`.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one number): the hash
holds the theoretical arrival time (TAT) of the next call, and a call conforms once the clock has
reached TAT minus the burst tolerance. Chosen over a token bucket with a refill counter because one
timestamp answers, in one step, how long a caller must wait for its turn, so a caller can reserve that
turn and sleep until it instead of polling; over a sliding-window log because that needs a row per call
and allows a whole window's calls at once. In any span of t seconds at most `rate x t + burst` calls
are granted (`burst` 1 by default: calls evenly spaced, which a gateway counting per second accepts).

- **A short wait is slept, a long one deferred.** A caller whose turn comes within `max_wait_seconds`
  reserves it and sleeps; a later turn is not reserved and the caller gets `RateLimited` (a `Deferred`:
  the job is sent again for then without spending a retry). Threads of one process take their turns one
  at a time (a lock per limiter and process), so the shared queue in Redis holds at most one waiter per
  process and the bound is about other processes, not a job's own threads.
- **A 429 slows it down.** The gateway knows its limit better than our setting does (another client of
  the account may use part of it). `slow_down()` takes a quarter off the rate (`SLOW_DOWN_FACTOR`), at
  most once per `hold_seconds` (the 429s of calls made before the slow-down say nothing new), never below
  `min_rate_per_second`; the rate then climbs back linearly, by half the configured rate every
  `recovery_seconds`.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from redis import Redis

from jobkit.breaker import state_client
from jobkit.errors import Deferred

logger = logging.getLogger("jobkit.ratelimit")

# A wait up to this long is slept. Each process has at most one waiter in the shared queue, so at
# Stripe's 25/s test-mode limit 50 processes can queue before any defers; and a deferral costs more:
# a broker round trip, a new start and up to JOB_DEFER_JITTER_SECONDS (2 s) of jitter.
MAX_WAIT_SECONDS = 2.0
# Stripe counts calls per second: the 429s answered within a second of a slow-down are for calls admitted
# before it, so they do not slow it down again.
HOLD_SECONDS = 1.0
# A 429 takes a quarter off the rate. Halving (TCP's choice) left a limiter set a little above the
# gateway's (30/s against Stripe's 25/s) billing at 76% of the gateway's limit, most of the time well
# below it (`make bench`, limit); a quarter gets under the limit at once from there, and from four times
# the gateway's limit (100/s against 25/s) within five seconds of 429s.
SLOW_DOWN_FACTOR = 0.75
# From half the rate back to the full rate: ten of the gateway's one-second windows at a lower rate, so a
# limit set above the gateway's costs a 429 every few seconds, not every second.
RECOVERY_SECONDS = 10.0
# Slowed down, the limiter still makes a call a second, to find out when the gateway takes more again.
MIN_RATE_PER_SECOND = 1.0

# KEYS: the limiter's hash. ARGV: rate, burst, recovery, floor rate, then the operation's own arguments.
# Times are kept as "%.6f" strings: Lua's default number formatting drops the microseconds.
_PRELUDE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local recovery = tonumber(ARGV[3])
local floor = math.min(tonumber(ARGV[4]), rate)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

local function fmt(t) return string.format('%.6f', t) end

-- the rate allowed now: after a slow-down it climbs back by half the configured rate per recovery period
local function current_rate()
  local factor = tonumber(redis.call('HGET', key, 'factor') or '1')
  if factor < 1 then
    local since = tonumber(redis.call('HGET', key, 'slowed_at'))
    factor = math.min(1, factor + 0.5 * (now - since) / recovery)
  end
  return math.max(floor, rate * factor)
end
"""

# ARGV[5]: the longest wait to reserve. Returns {granted|deferred, wait, rate now}.
_ACQUIRE = """
local max_wait = tonumber(ARGV[5])
local current = current_rate()
local interval = 1 / current
local tat = math.max(tonumber(redis.call('HGET', key, 'tat') or '0'), now)
local wait = math.max(0, tat - (burst - 1) * interval - now)
if wait > max_wait then
  redis.call('HINCRBY', key, 'deferred', 1)
  return {'deferred', fmt(wait), fmt(current)}
end
redis.call('HSET', key, 'tat', fmt(tat + interval))
redis.call('HINCRBY', key, 'granted', 1)
return {'granted', fmt(wait), fmt(current)}
"""

# ARGV[5]: hold seconds, ARGV[6]: the factor. Returns {slowed|held, rate before, rate after}.
_SLOW_DOWN = """
local hold = tonumber(ARGV[5])
local factor = tonumber(ARGV[6])
local before = current_rate()
redis.call('HINCRBY', key, 'rate_limited', 1)
local last = tonumber(redis.call('HGET', key, 'slowed_at') or '0')
if now - last < hold then return {'held', fmt(before), fmt(before)} end
local after = math.max(floor, before * factor)
redis.call('HSET', key, 'factor', fmt(after / rate), 'slowed_at', fmt(now))
redis.call('HINCRBY', key, 'slowdowns', 1)
return {'slowed', fmt(before), fmt(after)}
"""

_SNAPSHOT = """
local tat = tonumber(redis.call('HGET', key, 'tat') or '0')
return {
  fmt(current_rate()), fmt(math.max(0, tat - now)),
  redis.call('HGET', key, 'granted') or '0', redis.call('HGET', key, 'deferred') or '0',
  redis.call('HGET', key, 'rate_limited') or '0', redis.call('HGET', key, 'slowdowns') or '0',
}
"""


class RateLimited(Deferred):
    """Over the rate limit: ours (the turn is too far off) or the service's (`by_service`: it answered
    429 and did not make the call). Come back later."""

    def __init__(self, service: str, retry_after: float, detail: str, by_service: bool = False):
        super().__init__(f"{service} rate limited: {detail}", retry_after)
        self.args = (service, retry_after, detail, by_service)  # all in args: the exception survives pickling
        self.service = service
        self.by_service = by_service


# One lock per limiter name and process: its threads queue here, one at a time in the shared queue.
_turns: dict[str, threading.Lock] = {}
# A lock held by a thread at fork time would stay held in the child forever: children start afresh.
os.register_at_fork(after_in_child=_turns.clear)


def _turn(name: str) -> threading.Lock:
    return _turns.setdefault(name, threading.Lock())


def _key(name: str) -> str:
    return f"ratelimit:{name}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RateLimiter:
    def __init__(
        self,
        name: str,
        redis: Redis,
        *,
        rate_per_second: float,
        burst: int = 1,
        max_wait_seconds: float = MAX_WAIT_SECONDS,
        hold_seconds: float = HOLD_SECONDS,
        recovery_seconds: float = RECOVERY_SECONDS,
        min_rate_per_second: float = MIN_RATE_PER_SECOND,
    ):
        if rate_per_second <= 0 or min_rate_per_second <= 0:
            raise ValueError("rates must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if min(max_wait_seconds, hold_seconds) < 0 or recovery_seconds <= 0:
            raise ValueError("max wait and hold must not be negative, recovery must be positive")
        self.name = name
        self.redis = redis
        self.rate_per_second = rate_per_second
        self.max_wait_seconds = max_wait_seconds
        self.hold_seconds = hold_seconds
        self.key = _key(name)
        numbers = (rate_per_second, burst, recovery_seconds, min_rate_per_second)
        self._config = [repr(float(n)) for n in numbers]
        self._acquire = redis.register_script(_PRELUDE + _ACQUIRE)
        self._slow_down = redis.register_script(_PRELUDE + _SLOW_DOWN)
        self._snapshot = redis.register_script(_PRELUDE + _SNAPSHOT)

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.rate_per_second}/s)"

    def _run(self, script: Any, *args: object) -> list[str]:
        return [_text(value) for value in script(keys=[self.key], args=[*self._config, *args])]

    def acquire(self) -> float:
        """Take a turn to call: sleeps until it comes and returns the seconds waited, or raises
        RateLimited when it is more than `max_wait_seconds` away (nothing is reserved then)."""
        with _turn(self.name):
            kind, wait, rate = self._run(self._acquire, repr(float(self.max_wait_seconds)))
            seconds = float(wait)
            if kind == "deferred":
                raise RateLimited(self.name, seconds, f"next turn in {seconds:.2f}s at {float(rate):g}/s")
            if seconds > 0:
                time.sleep(seconds)
        return seconds

    def slow_down(self) -> None:
        """The service answered 429: slow down, unless it slowed down within `hold_seconds`."""
        kind, before, after = self._run(
            self._slow_down, repr(float(self.hold_seconds)), repr(SLOW_DOWN_FACTOR)
        )
        if kind == "slowed":
            logger.warning(
                "rate limit %s: the service answered 429, %g/s -> %g/s",
                self.name,
                float(before),
                float(after),
            )

    def snapshot(self) -> dict[str, Any]:
        """The limiter's state, read in one atomic step."""
        rate, queued, granted, deferred, rate_limited, slowdowns = self._run(self._snapshot)
        return {
            "name": self.name,
            "configured_rate": self.rate_per_second,
            "rate": float(rate),
            "queued_seconds": float(queued),  # how far ahead the turns are taken
            "granted": int(granted),
            "deferred": int(deferred),
            "rate_limited": int(rate_limited),  # 429s reported
            "slowdowns": int(slowdowns),  # of which slowed the rate down
        }

    def reset(self) -> None:
        """Forget everything: turns, slow-downs and counters (tests, admin)."""
        self.redis.delete(self.key)


def reset_limiter(service: str) -> None:
    """Forget a service's limiter state (tests, benchmarks), whatever this process's settings say."""
    state_client(settings.REDIS_URL).delete(_key(service))


def limiter_for(service: str) -> RateLimiter | None:
    """The limiter for an outside service (settings.RATE_LIMITS[service] calls per second), or None
    when the service has no limit (absent, or 0)."""
    rate = getattr(settings, "RATE_LIMITS", {}).get(service)
    return _limiter(service, settings.REDIS_URL, rate) if rate else None


@functools.cache
def _limiter(service: str, url: str, rate: float) -> RateLimiter:
    """One per configuration and process, like `jobkit.breaker.breaker_for`'s breakers."""
    return RateLimiter(service, state_client(url), rate_per_second=rate)
