"""A throwaway shop stack for benchmarks: its own database under var/bench, broker, sandbox, worker, web.

Import this module before Django settings load: it points DATABASE_URL at the benchmark database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.runtime import VAR_DIR
from envconfig import env_str

BENCH_DIR = VAR_DIR / "bench"
_DATABASE_URL = env_str("BENCH_DATABASE_URL", f"sqlite:///{BENCH_DIR / 'sqlite' / 'bench.sqlite3'}")
DATABASE_KIND = "postgresql" if _DATABASE_URL.startswith(("postgres://", "postgresql://")) else "sqlite"
# This database's run: its logs, the sandbox's state and (SQLite) the database file; report files stay in
# BENCH_DIR, where each database's run leaves its results-<kind>.json.
RUN_DIR = BENCH_DIR / DATABASE_KIND
RUN_DIR.mkdir(parents=True, exist_ok=True)
os.environ["DATABASE_URL"] = _DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from devstack import processes  # noqa: E402
from jobkit.models import JobRun  # noqa: E402
from sandbox.testing import SandboxControl  # noqa: E402


def fresh_run_dir() -> None:
    """Start this database's run from an empty folder. Called by the run's main, not at import: the
    processes it spawns (the raw-charge baseline) import this module too, and wiping the directory under a
    running stack takes its database with it."""
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)


@dataclass
class BenchStack:
    web_url: str
    sandbox: SandboxControl
    env: dict[str, str]
    log_dir: Path
    worker: processes.Child

    @contextlib.contextmanager
    def worker_paused(self) -> Iterator[None]:
        """The worker's processes stopped (SIGSTOP) meanwhile: messages wait in the broker. Only once it is
        idle: a process stopped inside a transaction would hold SQLite's write lock for the whole pause."""
        wait_until_idle()
        group = os.getpgid(self.worker.popen.pid)
        os.killpg(group, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(group, signal.SIGCONT)

    def restart_worker(self, **env: str) -> None:
        """A fresh worker process, with `env` over the stack's environment (a setting under test)."""
        self.worker.stop()
        self.worker.env = {**self.env, **env}
        self.worker.start()
        processes.wait_until(lambda: "ready." in self.worker.output_tail(), 60, "the worker", self.worker)


@contextlib.contextmanager
def bench_stack(worker_concurrency: int = 2) -> Iterator[BenchStack]:
    """Migrate the benchmark database and run the shop on free ports, as `make demo` would."""
    call_command("migrate", interactive=False, verbosity=0)
    log_dir = RUN_DIR / "log"
    children: list[processes.Child] = []
    try:
        redis_url = env_str("REDIS_URL")
        if not redis_url:
            redis_child, redis_url = processes.start_redis(log_dir, processes.free_port())
            children.append(redis_child)
        http_port, smtp_port, web_port = processes.free_port(), processes.free_port(), processes.free_port()
        children.append(processes.start_sandbox(log_dir, RUN_DIR / "sandbox.sqlite3", http_port, smtp_port))
        restore_settings = processes.use_services(redis_url, http_port, smtp_port)
        env = processes.service_env(redis_url, http_port, smtp_port, SHOP_BENCHMARK_ENDPOINTS="1")
        worker = processes.start_worker(log_dir, env, concurrency=worker_concurrency)
        children.append(worker)
        children.append(processes.start_web(log_dir, env, web_port))
        yield BenchStack(
            web_url=f"http://{processes.HOST}:{web_port}",
            sandbox=SandboxControl(f"http://{processes.HOST}:{http_port}"),
            env=env,
            log_dir=log_dir,
            worker=worker,
        )
        restore_settings()
    finally:
        for child in reversed(children):
            child.stop()


def wait_until_idle(timeout: float = 900) -> None:
    """Let earlier benchmarks' jobs finish, so this one measures its own orders only."""
    deadline = time.monotonic() + timeout
    while JobRun.objects.filter(status__in=JobRun.LIVE_STATUSES).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not drain earlier orders")
        time.sleep(0.5)
