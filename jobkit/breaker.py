"""A circuit breaker shared by every worker process (pattern 6).

A breaker kept in one process's memory lets N worker processes hit a dead service N x threshold times,
and one that just raises when open makes jobs burn their retries at full speed. This one keeps its state
in Redis, one hash per breaker (`breaker:<name>`), and changes it only inside Lua scripts, one script per
operation, timed by the Redis server clock, so every process sees the same breaker and the same time.

    closed --threshold failures within the window--> open --cooldown--> half_open
    half_open --probe succeeds--> closed;  half_open --probe fails--> open (a fresh cooldown)

Half-open admits exactly one probe at a time. The probe holds a lease that expires after
`probe_timeout_seconds`, so a prober that died does not wedge the breaker.

Calls in flight count against the failure budget once the window holds a failure: admission then stops
while `failures + calls in flight >= failure_threshold`, so a service that starts failing gets exactly
`failure_threshold` calls, however many processes call it at once (more only if more than that were
already in flight when the first failure came back). A healthy service is never throttled. Each
closed-state call holds a lease of `probe_timeout_seconds` too (in `breaker:<name>:calls`), so calls
from a dead process stop counting.

A caller that makes call after call (a thread of `jobkit.outside.call_concurrently`) may hold on to a
closed-state permit whose call succeeded (`guard(held=...)`): its next calls run on it again, with no
round trip, for up to `reuse_seconds` after it was admitted; then its success goes in with the next
admission (`admit(settled=...)`), and the last ones in together (`record_successes`). A held permit
stays a call in flight in the ledger all along, so the bounds above hold with "calls in flight" read as
"permits held": a service that starts failing gets at most one more call per permit held (the call that
fails ends the holder's calls), and after the breaker opened elsewhere a holder goes on for at most
`reuse_seconds`, only while its calls succeed, and never into the half-open state, which comes a
cooldown after the opening (`reuse_seconds` is below half the cooldown). Such a success only frees the
call's lease, and a lease freed later counts no failure and opens nothing; a probe's success closes the
breaker, so it is always reported at once, and a probe's permit is never used again.

`CircuitOpen.retry_after` tells a job when to come back: re-schedule it for then, without spending
its retry budget. Transitions are logged to `jobkit.breaker` and kept, newest first, in the capped list
`breaker:<name>:transitions` for the ops page.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError

from jobkit.errors import Deferred

logger = logging.getLogger("jobkit.breaker")

SERVICES = ("payments", "carrier", "mail")

# How long a held closed-state permit serves its holder's next calls: an admission a second per thread,
# 64 a second for the demo's worker at any rate, where a round trip per call was some 700 a second
# against a local gateway (`make bench`, billing on PostgreSQL: the breaker's Redis CPU per charge went
# from 0.067 to 0.030-0.037 ms). It is also how long a holder may go on calling after the breaker opened
# elsewhere, while its own calls succeed: short next to a cooldown (10 s by default).
PERMIT_REUSE_SECONDS = 1.0

# Shared head of every script. KEYS: state hash, in-flight calls (zset token -> lease expiry), transitions.
# ARGV: threshold, window, cooldown, lease, then the operation's own arguments.
# Times are kept as "%.6f" strings: Lua's default number formatting drops the microseconds.
_PRELUDE = """
local state_key, calls_key, log_key = KEYS[1], KEYS[2], KEYS[3]
local threshold = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cooldown = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local changes = {}

local function fmt(t) return string.format('%.6f', t) end

local function move(from, to, reason)
  redis.call('HSET', state_key, 'state', to)
  local entry = string.format('{"at":%.6f,"from":%s,"to":%s,"reason":%s}',
    now, cjson.encode(from), cjson.encode(to), cjson.encode(reason))
  redis.call('LPUSH', log_key, entry)
  redis.call('LTRIM', log_key, 0, 99)  -- keep the last 100
  table.insert(changes, entry)
end

-- failure times still inside the window, oldest first
local function recent_failures()
  local kept = {}
  local raw = redis.call('HGET', state_key, 'failure_times')
  if raw then
    for item in string.gmatch(raw, '%S+') do
      local t = tonumber(item)
      if t > now - window then table.insert(kept, t) end
    end
  end
  return kept
end

local function save_failures(times)
  local parts = {}
  for i, t in ipairs(times) do parts[i] = fmt(t) end
  redis.call('HSET', state_key, 'failure_times', table.concat(parts, ' '))
end

local function open(from, reason)
  redis.call('HSET', state_key, 'opened_at', fmt(now))
  redis.call('HDEL', state_key, 'probe_token', 'probe_expires')
  -- calls admitted before opening can no longer change the outcome: their reports are ignored
  redis.call('DEL', calls_key)
  move(from, 'open', reason)
end

-- the one time-driven transition, applied before every operation
local function current_state()
  local state = redis.call('HGET', state_key, 'state') or 'closed'
  if state == 'open' and now >= tonumber(redis.call('HGET', state_key, 'opened_at')) + cooldown then
    move('open', 'half_open', 'cooldown elapsed')
    state = 'half_open'
  end
  return state
end

-- the probe lease still running, or nil
local function live_probe()
  local expires = tonumber(redis.call('HGET', state_key, 'probe_expires') or '0')
  if expires > now then return expires end
  return nil
end

local function in_flight_calls()
  redis.call('ZREMRANGEBYSCORE', calls_key, '-inf', fmt(now))
  return redis.call('ZCARD', calls_key)
end

-- seconds until a call may be admitted; 0: now
local function wait_for(state)
  if state == 'open' then
    return tonumber(redis.call('HGET', state_key, 'opened_at')) + cooldown - now
  end
  if state == 'half_open' then
    local expires = live_probe()
    if expires then return math.min(cooldown, expires - now) end
    return 0
  end
  local failures = recent_failures()
  local in_flight = in_flight_calls()
  if #failures == 0 or #failures + in_flight < threshold then return 0 end
  -- the budget frees when an old failure leaves the window or a call lease ends; if the calls in flight
  -- fail instead, the breaker opens for a cooldown, so never promise more than that
  local wait = math.min(cooldown, failures[1] + window - now)
  local first = redis.call('ZRANGE', calls_key, 0, 0, 'WITHSCORES')
  if first[2] then wait = math.min(wait, tonumber(first[2]) - now) end
  return wait
end
"""

# ARGV[5]: the new permit's token; ARGV[6]: the token of the caller's previous call, which succeeded in the
# closed state (its report is freeing its lease), or ''. Returns {kind: probe|call|rejected, retry_after,
# state, changes}.
_ADMIT = """
local token, settled = ARGV[5], ARGV[6]
if settled ~= '' then redis.call('ZREM', calls_key, settled) end
local state = current_state()
local wait = wait_for(state)
if wait > 0 then
  redis.call('HINCRBY', state_key, 'rejected', 1)
  return {'rejected', fmt(wait), state, changes}
end
redis.call('HINCRBY', state_key, 'allowed', 1)
if state == 'half_open' then
  redis.call('HSET', state_key, 'probe_token', token, 'probe_expires', fmt(now + lease))
  redis.call('HINCRBY', state_key, 'probes', 1)
  return {'probe', '0', state, changes}
end
redis.call('ZADD', calls_key, fmt(now + lease), token)
return {'call', '0', state, changes}
"""

# ARGV[5]: token, ARGV[6]: 1 if the permit is the probe, ARGV[7]: success|failure|release. Returns changes.
_RECORD = """
local token, is_probe, outcome = ARGV[5], ARGV[6] == '1', ARGV[7]
local state = current_state()
if is_probe then
  -- only the probe holding the lease decides: a report from a lease taken over by a later probe is stale
  if state ~= 'half_open' or redis.call('HGET', state_key, 'probe_token') ~= token then return changes end
  redis.call('HDEL', state_key, 'probe_token', 'probe_expires')
  if outcome == 'success' then
    redis.call('HDEL', state_key, 'failure_times', 'opened_at')
    move('half_open', 'closed', 'probe succeeded')
  elseif outcome == 'failure' then
    open('half_open', 'probe failed')
  end
  return changes
end
redis.call('ZREM', calls_key, token)
-- failures reported while open or half-open come from calls admitted before opening: already counted
if outcome == 'failure' and state == 'closed' then
  local failures = recent_failures()
  table.insert(failures, now)
  while #failures > threshold do table.remove(failures, 1) end
  save_failures(failures)
  if #failures >= threshold then
    open('closed', string.format('failure %d of %d within %gs', #failures, threshold, window))
  end
end
return changes
"""

# ARGV[5...]: tokens of closed-state calls that succeeded: their leases end. Returns changes.
_SUCCEEDED = """
current_state()
for i = 5, #ARGV do redis.call('ZREM', calls_key, ARGV[i]) end
return changes
"""

# ARGV[5]: how many transitions to include. Returns {flat field/value list, transitions, changes}.
_SNAPSHOT = """
local state = current_state()
local wait = wait_for(state)
local in_flight = in_flight_calls()
if state == 'half_open' and live_probe() then in_flight = in_flight + 1 end
local failures = recent_failures()
local fields = {
  'state', state,
  'failures', tostring(#failures),
  'in_flight', tostring(in_flight),
  'retry_after', fmt(wait),
  'opened_at', redis.call('HGET', state_key, 'opened_at') or '',
  'allowed', redis.call('HGET', state_key, 'allowed') or '0',
  'rejected', redis.call('HGET', state_key, 'rejected') or '0',
  'probes', redis.call('HGET', state_key, 'probes') or '0',
}
return {fields, redis.call('LRANGE', log_key, 0, tonumber(ARGV[5]) - 1), changes}
"""


class CircuitOpen(Deferred):
    """The breaker did not admit the call; come back in `retry_after` seconds."""

    def __init__(self, breaker: str, retry_after: float, state: str = "open"):
        super().__init__(f"circuit {breaker!r} is {state}", retry_after)
        # All three in args, so the exception survives pickling (Celery results, multiprocessing).
        self.args = (breaker, retry_after, state)
        self.breaker = breaker
        self.state = state


@dataclass(frozen=True)
class Permit:
    """Permission for one call; hand it back with record_success / record_failure / release. A
    closed-state permit whose call succeeded may be held for the holder's next calls until `good_until`
    (this process's monotonic clock; `guard(held=...)`)."""

    breaker: str
    token: str
    probe: bool
    good_until: float = 0.0

    def reusable(self) -> bool:
        return not self.probe and time.monotonic() < self.good_until


def _text(value: bytes | str) -> str:
    # Works with clients made with or without decode_responses.
    return value.decode() if isinstance(value, bytes) else value


def _always(exc: BaseException) -> bool:
    return True


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        redis: Redis,
        *,
        failure_threshold: int = 5,
        window_seconds: float = 30.0,
        cooldown_seconds: float = 10.0,
        probe_timeout_seconds: float = 30.0,
    ):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if min(window_seconds, cooldown_seconds, probe_timeout_seconds) <= 0:
            raise ValueError("window, cooldown and probe timeout must be positive")
        self.name = name
        self.redis = redis
        self.failure_threshold = failure_threshold
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self.probe_timeout_seconds = probe_timeout_seconds
        # below half the cooldown and half the lease: a held permit is never used into the half-open
        # state, nor after its lease could have ended
        self.reuse_seconds = min(PERMIT_REUSE_SECONDS, cooldown_seconds / 2, probe_timeout_seconds / 2)
        self.key = f"breaker:{name}"
        self._keys = [self.key, f"{self.key}:calls", f"{self.key}:transitions"]
        timings = (window_seconds, cooldown_seconds, probe_timeout_seconds)
        self._config = [str(failure_threshold), *(repr(float(t)) for t in timings)]
        self._admit = redis.register_script(_PRELUDE + _ADMIT)
        self._record = redis.register_script(_PRELUDE + _RECORD)
        self._succeeded = redis.register_script(_PRELUDE + _SUCCEEDED)
        self._snapshot = redis.register_script(_PRELUDE + _SNAPSHOT)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r})"

    def _run(self, script: Any, *args: object) -> Any:
        return script(keys=self._keys, args=[*self._config, *args])

    def _log(self, changes: list[bytes | str]) -> None:
        for raw in changes:
            change = json.loads(_text(raw))
            level = logging.WARNING if change["to"] == "open" else logging.INFO
            logger.log(
                level, "circuit %s: %s -> %s (%s)", self.name, change["from"], change["to"], change["reason"]
            )

    def admit(self, settled: Permit | None = None) -> Permit:
        """A permit for one call, or CircuitOpen when the service must not be called now; `settled`: the
        caller's previous call, which succeeded, reported in the same round trip."""
        token = uuid.uuid4().hex
        previous = self._own_call(settled).token if settled is not None else ""
        admitted_at = time.monotonic()
        kind, retry_after, state, changes = self._run(self._admit, token, previous)
        self._log(changes)
        kind = _text(kind)
        if kind == "rejected":
            raise CircuitOpen(self.name, float(retry_after), _text(state))
        if kind == "probe":
            return Permit(self.name, token, probe=True)
        return Permit(self.name, token, probe=False, good_until=admitted_at + self.reuse_seconds)

    def _own_call(self, permit: Permit) -> Permit:
        """`permit`, checked to be a closed-state call of this breaker (a probe's success closes it)."""
        if permit.breaker != self.name or permit.probe:
            raise ValueError(f"{permit} is not a call admitted by breaker {self.name!r} while closed")
        return permit

    def _report(self, permit: Permit, outcome: str) -> None:
        if permit.breaker != self.name:
            raise ValueError(f"permit for {permit.breaker!r} handed to breaker {self.name!r}")
        self._log(self._run(self._record, permit.token, int(permit.probe), outcome))

    def record_successes(self, permits: list[Permit]) -> None:
        """Closed-state calls that worked, reported together (their leases end)."""
        if permits:
            with self._reporting(f"{len(permits)} successes"):
                self._log(self._run(self._succeeded, *(self._own_call(permit).token for permit in permits)))

    def record_success(self, permit: Permit) -> None:
        """The call worked; a successful probe closes the breaker."""
        self._report(permit, "success")

    def record_failure(self, permit: Permit) -> None:
        """The service failed; counts towards opening, and a failed probe re-opens the breaker."""
        self._report(permit, "failure")

    def release(self, permit: Permit) -> None:
        """The call ended without telling anything about the service: free its slot, change nothing."""
        self._report(permit, "release")

    @contextmanager
    def guard(
        self,
        counts_as_failure: Callable[[BaseException], bool] = _always,
        *,
        held: Permit | None = None,
        report_success: bool = True,
    ) -> Iterator[Permit]:
        """Admit, run the block, record its outcome; exceptions always propagate.

        `counts_as_failure` says which exceptions blame the service (a 5xx, a timeout) and which do not
        (a 4xx for a bad request). Interrupts (KeyboardInterrupt, SystemExit) never do. With
        `report_success=False` a closed-state call's success is left to the caller: to hold its permit
        for its next call (`held`), which runs on it again while it is good and else hands its success
        in with its admission, or to report with `record_successes`.
        """
        permit = self._own_call(held) if held is not None and held.reusable() else self.admit(held)
        try:
            yield permit
        except Exception as exc:
            self._settle(permit, "failure" if counts_as_failure(exc) else "release")
            raise
        except BaseException:
            self._settle(permit, "release")
            raise
        if report_success or permit.probe:
            self._settle(permit, "success")

    def _settle(self, permit: Permit, outcome: str) -> None:
        """Report how a guarded call ended."""
        with self._reporting(f"the call's {outcome}"):
            self._report(permit, outcome)

    @contextmanager
    def _reporting(self, what: str) -> Iterator[None]:
        """Around a report of calls that ended. The calls have happened whatever the breaker's store
        says: if Redis cannot take the report, their own outcomes stand (an email sent is not sent again,
        a charge made is recorded), and their leases free their slots later."""
        try:
            yield
        except RedisError as exc:
            logger.warning("circuit %s: %s went unrecorded: %s", self.name, what, exc)

    def snapshot(self, transitions: int = 10) -> dict[str, Any]:
        """The breaker as the ops page shows it, read in one atomic step."""
        raw_fields, raw_transitions, changes = self._run(self._snapshot, transitions)
        self._log(changes)
        fields = [_text(value) for value in raw_fields]
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        return {
            "name": self.name,
            "state": values["state"],
            "failures": int(values["failures"]),
            "in_flight": int(values["in_flight"]),
            "opened_at": float(values["opened_at"]) if values["opened_at"] else None,
            "retry_after": float(values["retry_after"]),
            "allowed": int(values["allowed"]),
            "rejected": int(values["rejected"]),
            "probes": int(values["probes"]),
            "transitions": [json.loads(_text(raw)) for raw in raw_transitions],
        }

    def transitions(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recorded state changes, newest first."""
        return [json.loads(_text(raw)) for raw in self.redis.lrange(self._keys[2], 0, limit - 1)]

    def reset(self) -> None:
        """Forget everything: state, calls in flight, counters and history (tests, admin)."""
        self.redis.delete(*self._keys)


@functools.cache
def state_client(url: str) -> Redis:
    """The Redis client for shared state (breakers, rate limiters): one connection pool per URL and
    process, thread-safe; keyed on the URL because tests override settings."""
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def breaker_for(service: str) -> CircuitBreaker:
    """The breaker for an outside service, configured by settings.CIRCUIT_BREAKERS[service]."""
    options = getattr(settings, "CIRCUIT_BREAKERS", {}).get(service, {})
    return _breaker(service, settings.REDIS_URL, tuple(sorted(options.items())))


@functools.cache
def _breaker(service: str, url: str, options: tuple[tuple[str, Any], ...]) -> CircuitBreaker:
    """One per configuration and process, as every call asks for its service's: a breaker keeps its
    state in Redis alone, and building one registers (hashes) its four scripts."""
    return CircuitBreaker(service, state_client(url), **dict(options))
