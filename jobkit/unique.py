"""Unique execution for jobs that must run once (a daily sweep, a billing run)."""

from __future__ import annotations

from django.db import connection

from jobkit.models import JobExecution
from jobkit.rows import insert_unless_taken


def claim_once(key: str) -> JobExecution | None:
    """The claim (truthy) for the first caller with this key, None for every later one.

    Call it inside the transaction that writes the job's effects: the claim commits with them, or
    rolls back with them, so a crash never leaves a claimed key with no work done.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("claim_once must run inside transaction.atomic() with the job's own writes")
    claim = JobExecution(key=key)
    return claim if insert_unless_taken(claim) else None  # in a savepoint: a duplicate undoes only itself
