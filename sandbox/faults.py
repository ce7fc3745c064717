"""Fault settings per service: their defaults and the validation of a `PUT /_sandbox/faults/<service>`."""

from __future__ import annotations

from typing import Any

_COMMON = {"outage": False, "latency_ms": 0, "error_rate": 0.0, "drop_after_commit": False}
DEFAULTS: dict[str, dict[str, Any]] = {
    # rate_limit_per_second: requests admitted in any one second, as Stripe limits an account (0: off)
    "payments": {**_COMMON, "rate_limit_per_second": 0},
    "carrier": {**_COMMON, "reject_registrations": False},
    "mail": {**_COMMON, "reject_recipients": False},
    "webhooks": {"outage": False, "duplicate": 0, "shuffle": False},
}
# Generous caps that still keep a typo from hanging a test run or flooding a receiver.
MAX_LATENCY_MS = 120_000
MAX_DUPLICATES = 10
MAX_RATE_LIMIT = 10_000


def defaults() -> dict[str, dict[str, Any]]:
    return {service: dict(fields) for service, fields in DEFAULTS.items()}


def merge_saved(saved: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Defaults overlaid with persisted values, ignoring fields a newer or older sandbox does not know."""
    merged = defaults()
    for service, fields in (saved or {}).items():
        if service in merged:
            merged[service].update({k: v for k, v in fields.items() if k in merged[service]})
    return merged


def validate(service: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Return the changes normalised (error_rate as float), or raise ValueError with a readable reason."""
    if service not in DEFAULTS:
        raise ValueError(f"unknown service {service!r}; expected one of {sorted(DEFAULTS)}")
    known = DEFAULTS[service]
    clean: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in known:
            raise ValueError(f"unknown field {field!r} for {service}; expected some of {sorted(known)}")
        clean[field] = _check(field, value, type(known[field]))
    return clean


def _check(field: str, value: Any, kind: type) -> Any:
    # bool is a subclass of int, so it has to be excluded explicitly from the numeric fields.
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{field} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number")
    if kind is float:
        if not 0 <= value <= 1:
            raise ValueError(f"{field} must be between 0 and 1")
        return float(value)
    limit = {"latency_ms": MAX_LATENCY_MS, "rate_limit_per_second": MAX_RATE_LIMIT}.get(field, MAX_DUPLICATES)
    if not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{field} must be an integer between 0 and {limit}")
    return value
