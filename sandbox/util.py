"""Identifiers and timestamps shared by the services."""

from __future__ import annotations

import itertools
import random
import string
import time
from datetime import UTC, datetime

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase  # in byte order
# A time-based counter leads every id, so new rows append to the end of the id index instead of landing
# on random pages: that keeps SQLite's writes (and checkpoints) small when 100k charges go through.
_sequence = itertools.count(time.time_ns() // 1000)


def new_id(prefix: str) -> str:
    """A Stripe-looking id such as `pi_1hK3...`: 10 ordered then 14 random base62 characters."""
    value, head = next(_sequence), []
    for _ in range(10):
        value, digit = divmod(value, 62)
        head.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(head))}{''.join(random.choices(_ALPHABET, k=14))}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
