from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from devstack import processes
from devstack.processes import HOST, PYTHON, Child, base_env, free_port, redis_ping, wait_until
from devstack.runtime import VAR_DIR, pid_alive
from envconfig import env_str
from jobkit.breaker import SERVICES, breaker_for
from jobkit.ratelimit import reset_limiter
from orders.models import Order
from sandbox.testing import SandboxControl
from shop.factories import ProductFactory, seed_plans
from tests.harness import Stack, database_url, wait_for

ROOT = Path(__file__).resolve().parent.parent
TEST_VAR = VAR_DIR / "test" / str(os.getpid())  # per session: two test runs can share a checkout
STANDARD_WORKER = "test-worker"
# The shop's own reminder offsets (+24/48/72 h), pinned so that a value in the environment cannot shorten
# them: tests make reminders due by moving the shop clock a day at a time (tests/e2e/shop_clock.py).
REMINDER_OFFSETS = [86400, 172800, 259200]


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/browser/conftest.py: pytest takes options only from the conftests it loads first.
    parser.addoption(
        "--tour-screenshots",
        metavar="DIR",
        type=Path,
        help="the browser tests save the screenshots of docs/tour.md into DIR (make tour: docs/tour)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Media files per session too, like the test database; worker processes get it through service_env.
    django_settings.MEDIA_ROOT = TEST_VAR / "media"


@pytest.fixture(scope="session")
def log_dir() -> Path:
    for old in TEST_VAR.parent.glob("*"):  # what earlier, finished sessions left behind
        if old.name.isdigit() and not pid_alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    path = TEST_VAR / "log"
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def broker_url(log_dir: Path) -> Iterator[str]:
    """REDIS_URL if given (CI: a real server, a database of its own), else a private broker process."""
    url = env_str("REDIS_URL")
    if url:
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    child, url = processes.start_redis(log_dir, processes.free_port())
    yield url
    child.stop()


@pytest.fixture(scope="module", params=["redis-server", "embedded"])
def redis_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of the module's own, once real and once embedded: for the shared state of circuit
    breakers and rate limiters (tests/test_breaker.py, tests/test_ratelimit.py), no database needed."""
    log_dir = tmp_path_factory.mktemp("state-redis")
    port = free_port()
    if request.param == "redis-server":
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("no redis-server on PATH")
        argv = [exe, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(log_dir)]
    else:
        argv = [PYTHON, "-m", "devstack.embedded_redis", "--host", HOST, "--port", str(port)]
    child = Child(request.param, argv, base_env(PYTHONPATH=str(ROOT)), log_dir).start()
    url = f"redis://{HOST}:{port}/0"
    try:
        wait_until(lambda: redis_ping(url), 20, f"{request.param} on port {port}", child)
        yield url
    finally:
        child.stop()


@pytest.fixture(scope="session")
def sandbox_process(log_dir: Path) -> Iterator[processes.Child]:
    state = TEST_VAR / f"sandbox-{os.getpid()}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        state.with_name(state.name + suffix).unlink(missing_ok=True)
    child = processes.start_sandbox(log_dir, state, processes.free_port(), processes.free_port())
    yield child
    child.stop()


@pytest.fixture(scope="session")
def stack(
    django_db_setup: None,
    django_db_blocker: object,
    broker_url: str,
    sandbox_process: processes.Child,
    log_dir: Path,
) -> Iterator[Stack]:
    """Broker + sandbox + one Celery worker process on all queues, wired to the test database."""
    ports = json.loads((log_dir / "sandbox.ready.json").read_text())
    sandbox_url = f"http://{processes.HOST}:{ports['http_port']}"
    restore_settings = processes.use_services(
        broker_url, ports["http_port"], ports["smtp_port"], REMINDER_OFFSETS_SECONDS=REMINDER_OFFSETS
    )
    env = processes.service_env(
        broker_url,
        ports["http_port"],
        ports["smtp_port"],
        DATABASE_URL=database_url(connection.settings_dict),
        # A message held by a worker that died whole comes back after this many seconds.
        CELERY_VISIBILITY_TIMEOUT="10",
        CELERY_UNACKED_RESTORE_INTERVAL="1",
        CELERY_UNACKED_RESTORE_THROTTLE="1",
        # Retries at most a couple of seconds apart, so outage tests finish quickly.
        JOB_RETRY_BACKOFF_SECONDS="1",
        JOB_RETRY_BACKOFF_MAX_SECONDS="2",
        # Breakers that open, cool down and probe within seconds.
        BREAKER_WINDOW_SECONDS="10",
        BREAKER_COOLDOWN_SECONDS="2",
        # The limiter takes every payments call's turn, but far above what the sandbox serves here: only
        # the tests that set a limit of their own are paced by it.
        GATEWAY_RATE_LIMIT_PER_SECOND="1000",
        JOB_DEFER_JITTER_SECONDS="0.5",
        # Reminders at the shop's real offsets; where a test runs a beat, it looks for due ones every 0.5 s.
        REMINDER_OFFSETS_SECONDS=",".join(str(s) for s in REMINDER_OFFSETS),
        REMINDER_INTERVAL_SECONDS="0.5",
        # Where a test runs a beat, its sweepers look every 2 s for work idle 15 s (lost messages).
        SWEEP_INTERVAL_SECONDS="2",
        SWEEP_STUCK_AFTER_SECONDS="15",
    )
    stack = Stack(broker_url=broker_url, sandbox=SandboxControl(sandbox_url), env=env, log_dir=log_dir)
    stack.add_worker(STANDARD_WORKER)
    yield stack
    for worker in stack.workers:
        worker.stop()
    restore_settings()


@pytest.fixture
def e2e(stack: Stack, transactional_db: None) -> Iterator[Stack]:
    """An end-to-end test: committed data, a clean sandbox, closed breakers, the running worker, and a
    broker holding no message, before and after (so no job of one test writes rows in the next)."""
    stack.sandbox.reset()
    reset_shared_state()
    stack.drain_broker()
    yield stack
    stack.sandbox.clear_faults()  # what a test left failing ends its retries quickly
    reset_shared_state()
    stack.drain_broker()


def reset_shared_state() -> None:
    """Closed breakers and fresh rate limiters (no turns taken, no slow-down) for every service."""
    for service in SERVICES:
        breaker_for(service).reset()
        reset_limiter(service)


@pytest.fixture
def workers(e2e: Stack) -> Iterator[Stack]:
    """For tests that kill, replace or add workers: afterwards exactly one standard worker runs again."""
    yield e2e
    e2e.stop_beats()
    for child in list(e2e.workers):
        if child.name != STANDARD_WORKER or not child.alive():
            e2e.stop_worker(child)
    if not e2e.workers:
        e2e.add_worker(STANDARD_WORKER)


@pytest.fixture
def plans(db: None) -> list:
    return seed_plans()


@pytest.fixture
def catalogue(db: None) -> list:
    return [
        ProductFactory(sku="TEA-EARL", name="Earl Grey", price="8.50", stock=50),
        ProductFactory(sku="MUG-BLUE", name="Blue mug", price="14.00", stock=5),
    ]


def order_timeline(order_id: str) -> str:
    from jobkit.selectors import timeline

    order = Order.objects.filter(public_id=order_id).first()
    if order is None:
        return f"order {order_id} does not exist"
    rows = [
        f"  {run.name:28} {run.status:10} attempts={run.attempts} error={run.last_error[:200]!r}"
        for run in timeline(order.subject).jobs
    ]
    return f"order {order_id} is {order.status!r} ({order.status_reason})\njob timeline:\n" + "\n".join(rows)


@pytest.fixture
def wait_for_order(e2e: Stack):
    """wait_for_order(order_id, *statuses, timeout=30) -> Order, failing with the job timeline."""

    def wait(order_id: str, *statuses: str, timeout: float = 30) -> Order:
        return wait_for(
            lambda: Order.objects.filter(public_id=order_id, status__in=statuses).first(),
            timeout,
            lambda: f"waiting for {statuses}: {order_timeline(order_id)}\n{e2e.logs()}",
        )

    return wait
