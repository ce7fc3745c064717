"""End-to-end test harness: real broker, real sandbox, a real Celery worker process.

The worker runs the project's own code against the test database (pytest-django creates it), so the
data a test writes must be committed: end-to-end tests use the `transactional_db` fixture.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import kombu.pools
import redis

from devstack import processes
from sandbox.testing import SandboxControl
from shop.celery import QUEUES
from shop.celery import app as celery_app


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the worker that names the database this test process is using."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    if "postgresql" in engine:
        user = quote(settings_dict.get("USER") or "")
        password = quote(settings_dict.get("PASSWORD") or "")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    raise RuntimeError(f"no DATABASE_URL mapping for {engine}")


@dataclass
class Stack:
    """The running services of one test session."""

    broker_url: str
    sandbox: SandboxControl
    env: dict[str, str]
    log_dir: Path
    workers: list[processes.Child] = field(default_factory=list)
    beats: list[processes.Child] = field(default_factory=list)

    def add_worker(
        self, name: str, wait: bool = True, queues: tuple[str, ...] = QUEUES, **env: str
    ) -> processes.Child:
        child = processes.start_worker(self.log_dir, {**self.env, **env}, name=name, queues=queues, wait=wait)
        self.workers.append(child)
        return child

    def add_crashing_worker(
        self,
        crash_at: str,
        name: str = "crashing-worker",
        queues: tuple[str, ...] = QUEUES,
        wait: bool = True,
    ) -> tuple[processes.Child, Path]:
        """A worker that SIGKILLs itself the first time it reaches crash point `crash_at` (jobkit/crash.py).
        Returns it and the marker file that says it crashed."""
        marker = self.log_dir / f"{name}.crashed"
        marker.unlink(missing_ok=True)
        child = self.add_worker(name, wait, queues, SHOP_CRASH_AT=crash_at, SHOP_CRASH_MARKER=str(marker))
        return child, marker

    def stop_worker(self, child: processes.Child) -> None:
        child.stop()
        self.workers.remove(child)

    def add_beat(self, name: str, **env: str) -> processes.Child:
        """A Celery beat process with its own schedule file (two beats model a misconfigured deploy)."""
        schedule = self.log_dir / f"{name}-schedule"
        child = processes.start_beat(self.log_dir, {**self.env, **env}, schedule, name=name)
        self.beats.append(child)
        return child

    def stop_beats(self) -> None:
        processes.stop_all(self.beats)
        self.beats.clear()

    def drain_broker(self, timeout: float = 60) -> None:
        """Wait until the broker holds no message (queued, or taken and unacknowledged); after `timeout`,
        drop what is left, saying so. Messages of a worker killed whole come back after the visibility
        timeout (10 s here), so a crash test's leftovers are waited for, not dropped."""
        client = redis.Redis.from_url(self.broker_url)

        def held() -> int:
            return sum(client.llen(queue) for queue in QUEUES) + client.hlen("unacked")

        deadline = time.monotonic() + timeout
        while held() and time.monotonic() < deadline:
            time.sleep(0.2)
        if held():
            warnings.warn(f"dropped {held()} job message(s) left after {timeout}s", stacklevel=2)
            client.delete(*QUEUES, "unacked", "unacked_index")

    def logs(self) -> str:
        children = self.workers + self.beats
        return "\n".join(f"--- {c.name} (last lines) ---\n{c.output_tail()}" for c in children)


def jobs_idle() -> bool:
    """No job of the timeline is queued, running or waiting to retry."""
    from jobkit.models import JobRun

    return not JobRun.objects.filter(status__in=JobRun.LIVE_STATUSES).exists()


def wait_for(check: Callable[[], Any], timeout: float, explain: Callable[[], str]) -> Any:
    """Poll `check` until it returns something truthy; on timeout fail with `explain()`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s\n{explain()}")
        time.sleep(0.1)


def run_in_processes(target: Callable[..., None], args: tuple[Any, ...], count: int) -> None:
    """Run `target(*args, barrier)` in `count` OS processes that start together; each must exit 0.

    Spawned, not forked: forking the test process, which runs the e2e stack's threads, can inherit a lock
    held mid-operation and hang the child. The barrier starts them all at once, once they are imported.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    children = [context.Process(target=target, args=(*args, barrier)) for _ in range(count)]
    try:
        for child in children:
            child.start()
        for child in children:
            child.join(60)
        assert [child.exitcode for child in children] == [0] * count
    finally:
        for child in children:
            if child.is_alive():
                child.kill()


@contextlib.contextmanager
def producer_pointed_at(url: str) -> Iterator[None]:
    """This process's Celery producer sends to the broker at `url` meanwhile."""
    before = celery_app.conf.broker_url
    _point_producer(url)
    try:
        yield
    finally:
        _point_producer(before)


def broker_unreachable() -> contextlib.AbstractContextManager[None]:
    """A port nobody listens on: a stopped broker, as the web sees it."""
    return producer_pointed_at(f"redis://{processes.HOST}:{processes.free_port()}/0")


def _point_producer(url: str) -> None:
    celery_app.conf.broker_url = url
    # Drop every cached connection and producer, so the next publish connects to `url`.
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
