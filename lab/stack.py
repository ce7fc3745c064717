"""The lab's stack: broker, sandbox, one shop worker and one naive worker, each a real process started
through devstack.processes as the demo, the tests and the fault campaign start them; the lab's own
database and environment come from chaos.environment (the campaign's timings: lost messages back in
10 s, breakers that cool down in 3 s)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chaos import environment
from devstack import processes
from devstack.runtime import VAR_DIR
from envconfig import env_str
from sandbox.testing import SandboxControl

LAB_DIR = VAR_DIR / "lab"
# Three processes per worker: enough for the traps that need several (a breaker per process), few
# enough for a two-core machine.
CONCURRENCY = 3
# Reminders seconds apart instead of days (as the test stack), looked for every half second by the beat.
# The shop's recovery sweep sees the naive app's orders too (one database): it must not "recover" one while
# a row watches what the naive code does with it, which takes up to ~20 s (row B: a kill, a restart, three
# visibility timeouts). At the campaign's 15 s it charged row B's "lost" order, now and then, in CI.
LAB_SETTINGS = {
    "REMINDER_OFFSETS_SECONDS": "4,8,12",
    "REMINDER_INTERVAL_SECONDS": "0.5",
    "SWEEP_STUCK_AFTER_SECONDS": "120",
}


@dataclass
class LabStack:
    folder: Path
    env: dict[str, str]
    redis_url: str
    sandbox: SandboxControl
    shop: processes.Child  # a shop worker on every queue
    naive: processes.Child  # the naive app's worker (lab/naive/app.py)
    others: list[processes.Child]  # broker, sandbox, beat


def wait(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def lab_stack() -> Iterator[LabStack]:
    """Everything the lab runs, on free ports, torn down at the end (the PostgreSQL database dropped)."""
    folder = environment.workdir(LAB_DIR)
    database = environment.create_database(folder, prefix="lab")
    given_redis = env_str("REDIS_URL")
    ports = environment.Ports(*(processes.free_port() for _ in range(4)))
    redis_url = given_redis or f"redis://{processes.HOST}:{ports.redis}/0"
    env = environment.apply(folder, database, ports, redis_url)
    os.environ.update(LAB_SETTINGS)  # the runner's settings as the workers' (environment.apply's rule)
    env.update(LAB_SETTINGS)

    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", interactive=False, verbosity=0)
    log_dir = folder / "log"
    others: list[processes.Child] = []
    workers: list[processes.Child] = []
    try:
        if given_redis:
            redis.Redis.from_url(given_redis).flushdb()  # the run's database, as the test suite does
        else:
            others.append(processes.start_redis(log_dir, ports.redis)[0])
        others.append(processes.start_sandbox(log_dir, folder / "sandbox.sqlite3", ports.sandbox, ports.smtp))
        shop = processes.start_worker(log_dir, dict(env), name="shop-worker", concurrency=CONCURRENCY)
        workers.append(shop)
        naive = processes.start_worker(
            log_dir, dict(env), name="naive-worker", queues=("naive",), concurrency=CONCURRENCY,
            app="lab.naive.app",
        )  # fmt: skip
        workers.append(naive)
        others.append(processes.start_beat(log_dir, env, log_dir / "beat-schedule"))
        yield LabStack(
            folder, env, redis_url, SandboxControl(f"http://{processes.HOST}:{ports.sandbox}"),
            shop, naive, others,
        )  # fmt: skip
    finally:
        processes.stop_all([*workers, *others[::-1]], timeout=10)
        connections.close_all()
        database.drop()
