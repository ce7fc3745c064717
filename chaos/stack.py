"""The campaign's own shop: broker, sandbox, workers split by queue group, two beats and the web server,
started through devstack.processes as the demo and the test harness start them, plus the means to break
them: kill a worker (or arm it with a crash point), flush or stop the broker, cut database connections.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis

from chaos.environment import JOBS_APPLICATION, WEB_APPLICATION, Database, Ports
from devstack import processes

# docker-compose.yml's queue groups, with the core group run twice: two processes take billing and
# default jobs, so a killed one leaves the other working, and duplicate deliveries really race.
WORKER_GROUPS: dict[str, tuple[tuple[str, ...], int]] = {
    "core-1": (("default", "billing", "maintenance"), 2),
    "core-2": (("default", "billing", "maintenance"), 2),
    "documents": (("documents",), 2),
    "io": (("mailers", "external"), 4),
}
# The workers that reach the crash points: charges, refunds and billing batches run on `billing`.
BILLING_WORKERS = tuple(name for name, (queues, _) in WORKER_GROUPS.items() if "billing" in queues)
# The workers that send email: a kill of one right after the SMTP server accepted a message is the one
# way the shop may send that message twice (notifications/services.py).
MAIL_WORKERS = tuple(name for name, (queues, _) in WORKER_GROUPS.items() if "mailers" in queues)
# Processes that may call the payment gateway at the same moment, each with up to GATEWAY_CALLS_IN_FLIGHT
# calls going for a billing batch (the breaker check needs it).
GATEWAY_CALLERS = sum(WORKER_GROUPS[name][1] for name in BILLING_WORKERS)


@dataclass
class Exit:
    """A process of the stack that stopped, and why."""

    at: float  # wall clock
    name: str
    cause: str  # "killed" (by the campaign), "crash point <name>", or "exited" (on its own: a finding)
    last_words: str = ""  # for an exit on its own: the process's last error line


@dataclass
class ChaosStack:
    folder: Path
    env: dict[str, str]
    ports: Ports
    database: Database
    redis_url: str
    own_redis: bool  # False with REDIS_URL: a server the campaign may flush but not restart
    workers: dict[str, processes.Child] = field(default_factory=dict)
    others: list[processes.Child] = field(default_factory=list)  # sandbox, beats, web
    broker: processes.Child | None = None
    exits: list[Exit] = field(default_factory=list)
    fired: dict[str, str] = field(default_factory=dict)  # crash point -> worker it killed
    _killed: set[str] = field(default_factory=set)
    _broker_held_down: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # Linux signals a child when the *thread* that started it ends (devstack.processes, PR_SET_PDEATHSIG):
    # every restart during the campaign goes through this one thread, which lives as long as the stack.
    _spawner: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "spawner"))

    @property
    def log_dir(self) -> Path:
        return self.folder / "log"

    @property
    def web_url(self) -> str:
        return f"http://{processes.HOST}:{self.ports.web}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{processes.HOST}:{self.ports.sandbox}"

    # --- start and stop ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.own_redis:
            self.broker, _ = processes.start_redis(self.log_dir, self.ports.redis)
        self.others.append(
            processes.start_sandbox(
                self.log_dir,
                self.folder / "sandbox.sqlite3",
                self.ports.sandbox,
                self.ports.smtp,
                webhook_url=f"{self.web_url}/webhooks/stripe",
                webhook_secret=self.env["STRIPE_WEBHOOK_SECRET"],
            )
        )
        jobs_env = {**self.env, "DATABASE_URL": self.database.for_application(JOBS_APPLICATION)}
        for name, (queues, concurrency) in WORKER_GROUPS.items():
            self.workers[name] = processes.start_worker(
                self.log_dir, dict(jobs_env), name=name, queues=queues, concurrency=concurrency, wait=False
            )
        for child in self.workers.values():
            processes.wait_until(partial(_ready, child), 120, f"{child.name} to be ready", child)
        # Two beats, as a deploy that started one too many: every periodic job must be safe to run twice.
        for name in ("beat-1", "beat-2"):
            schedule = self.log_dir / f"{name}-schedule"
            self.others.append(processes.start_beat(self.log_dir, jobs_env, schedule, name=name))
        web_env = {**self.env, "DATABASE_URL": self.database.for_application(WEB_APPLICATION)}
        self.others.append(processes.start_web(self.log_dir, web_env, self.ports.web))

    def stop(self) -> None:
        processes.stop_all([*self.workers.values(), *self.others])
        if self.broker is not None:
            self.broker.stop()
        self._spawner.shutdown()

    def _restart(self, child: processes.Child) -> None:
        self._spawner.submit(child.start).result()

    def all_children(self) -> list[processes.Child]:
        return [*self.workers.values(), *self.others, *([self.broker] if self.broker else [])]

    # --- workers ------------------------------------------------------------------------------------------
    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker's whole process group (main process and pool), as a power cut would."""
        with self._lock:
            child = self.workers[name]
            self._killed.add(name)
            child.signal_group(signal.SIGKILL)
            if child.popen is not None:
                child.popen.wait(10)

    def kill_relay(self) -> None:
        """SIGKILL the relay beside the web server, between or inside its sends; gunicorn's master starts
        another (gunicorn.conf.py). Staged jobs wait for it, or for the sweep."""
        web = next(child for child in self.others if child.name == "web")
        pid = processes.relay_pid(web)
        if pid is None:
            raise RuntimeError("no relay beside the web server to kill")
        os.kill(pid, signal.SIGKILL)

    def arm(self, point: str) -> None:
        """Kill the billing workers; they come back with crash point `point` armed behind one shared
        marker file, so whichever reaches it first kills itself there, once (jobkit/crash.py)."""
        marker = self.marker(point)
        marker.unlink(missing_ok=True)
        with self._lock:
            for name in BILLING_WORKERS:
                self.workers[name].env.update(SHOP_CRASH_AT=point, SHOP_CRASH_MARKER=str(marker))
                self.kill_worker(name)

    def marker(self, point: str) -> Path:
        return self.folder / f"crash-{point}"

    def disarm(self, point: str) -> None:
        """A crash point that has not fired by now never will: its marker says it already did."""
        with contextlib.suppress(FileExistsError):
            self.marker(point).touch(exist_ok=False)

    def supervise(self) -> None:
        """Restart whatever is down, except the broker while the campaign holds it down."""
        with self._lock:
            for child in self.all_children():
                if child.alive() or (child is self.broker and self._broker_held_down):
                    continue
                cause = self._cause(child)
                last_words = _last_error(child) if cause == "exited" else ""
                self.exits.append(Exit(time.time(), child.name, cause, last_words))
                self._restart(child)

    def _cause(self, child: processes.Child) -> str:
        point = child.env.get("SHOP_CRASH_AT")
        if point and self.marker(point).exists():
            del child.env["SHOP_CRASH_AT"]  # spent: it comes back without it
            if child.name not in self._killed and point not in self.fired:
                self.fired[point] = child.name
                return f"crash point {point}"
        if child.name in self._killed:
            self._killed.discard(child.name)
            return "killed"
        return "exited"

    # --- the broker ---------------------------------------------------------------------------------------
    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)

    def flush_broker(self) -> None:
        """Every queued message, unacknowledged message and breaker state gone at once."""
        if self.own_redis:
            self.client().flushall()
        else:
            self.client().flushdb()  # a shared server: only the campaign's database

    def stop_broker(self) -> None:
        """Kill the broker (it keeps nothing on disk); without our own, cut every client of our database."""
        if self.broker is None:
            client = self.client()
            database = client.connection_pool.connection_kwargs.get("db", 0)
            own = client.client_id()
            for entry in client.client_list():
                if int(entry.get("db", -1)) == database and int(entry["id"]) != own:
                    client.client_kill_filter(_id=entry["id"])
            client.flushdb()
            return
        with self._lock:
            self._broker_held_down = True
            self.broker.signal_group(signal.SIGKILL)
            if self.broker.popen is not None:
                self.broker.popen.wait(10)
            self.exits.append(Exit(time.time(), self.broker.name, "killed"))

    def start_broker(self) -> None:
        """The broker back on the same port, empty."""
        if self.broker is None or not self._broker_held_down:
            return
        with self._lock:
            self._restart(self.broker)
            self._broker_held_down = False
        processes.wait_until(lambda: processes.redis_ping(self.redis_url), 30, "the broker", self.broker)

    # --- the database -------------------------------------------------------------------------------------
    def terminate_job_connections(self) -> int:
        """PostgreSQL: end every connection of the workers to the campaign's database. The web server's
        are spared: a request whose connection is cut answers 500, and the shop promises jobs (not
        requests) that ride out a database blip."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                [JOBS_APPLICATION],
            )
            return cursor.fetchone()[0]


def _ready(child: processes.Child) -> bool:
    return "ready." in child.output_tail()


def _last_error(child: processes.Child) -> str:
    lines = child.output_tail().splitlines()
    errors = [line for line in lines if "CRITICAL" in line or "Error" in line]
    return (errors or lines or [""])[-1].strip()[:300]
