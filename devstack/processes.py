"""Start, watch and stop the shop's processes: broker, sandbox, Celery worker and beat, web server.

Used by `python manage.py demo`, the end-to-end test harness and the benchmarks, so all run the same commands.
Every child gets its own process group. A stop is graceful first: SIGTERM goes to the group leader
alone (the Celery main process finishes its running jobs, the gunicorn master drains its workers);
after STOP_TIMEOUT_SECONDS whatever is left of the group is killed, so nothing keeps holding a port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from envconfig import env_choice
from shop.celery import QUEUES

PYTHON = sys.executable
HOST = "127.0.0.1"
# How long a stop waits for a child to exit by itself (a Celery worker finishing the jobs it runs) before
# killing it: well under the 60 s soft time limit, so Ctrl-C stays prompt even with a slow job running.
STOP_TIMEOUT_SECONDS = 30.0
# How long a child that outlived its stop gets to print its threads' stacks before it is killed.
STACK_DUMP_SECONDS = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` now. SO_REUSEADDR, as gunicorn and the sandbox bind:
    sockets of a stopped server's closed connections (TIME_WAIT, about a minute) do not count as use."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def port_or_free(preferred: int) -> int:
    """The conventional port when it is free, else any free one (published in var/runtime.json)."""
    return preferred if port_is_free(preferred) else free_port()


def die_with_parent() -> None:
    """Linux: if the supervisor itself is killed (-9), the kernel sends the child SIGTERM.

    The kernel sends it when the *thread* that started the child ends, not only the process: start
    children from a thread that lives as long as they should (the main thread, as the demo does).
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A supervised process whose output goes to a log file (and, for the demo, the terminal)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_dir: Path,
        echo: IO[str] | None = None,
        stack_dump_signal: int | None = None,
    ):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.echo = echo
        self.popen: subprocess.Popen[bytes] | None = None
        self.pump: threading.Thread | None = None
        self.tail: deque[str] = deque(maxlen=60)
        # A signal the child answers by printing every thread's stack, sent before a stop kills it so its
        # log says where it hung (Celery's worker: SIGUSR1). None: the child has no such signal.
        self.stack_dump_signal = stack_dump_signal

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.tail.clear()  # a restarted child is judged by its own output
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C reaches only the supervisor, which then stops children in order.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.pump = threading.Thread(
            target=self._pump, args=(self.popen,), daemon=True, name=f"pump-{self.name}"
        )
        self.pump.start()
        return self

    def _pump(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        with self.log_path.open("ab") as log:
            for raw in popen.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip()
                self.tail.append(line)
                if self.echo is not None:
                    print(f"[{self.name}] {line}", file=self.echo, flush=True)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_leader(self, sig: int) -> None:
        if self.popen is not None:
            self.popen.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        stop_all([self], timeout)

    def output_tail(self) -> str:
        return "\n".join(self.tail)


def stop_all(children: list[Child], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM every child's leader at once, wait up to `timeout` in total, then SIGKILL what is left.

    Only the leader: a signal to the whole group would kill Celery's pool processes mid-job
    (WorkerLostError) instead of letting the main process's warm shutdown wait for them.
    """
    for child in children:
        if child.alive():
            child.signal_leader(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        if child.popen is None:
            continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.popen.wait(max(0.1, deadline - time.monotonic()))
        if child.alive() and child.stack_dump_signal is not None:
            child.signal_leader(child.stack_dump_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(STACK_DUMP_SECONDS)
        # A leader past the timeout, and whatever it left behind in its group, goes now.
        child.signal_group(signal.SIGKILL)
        child.popen.wait(5)
        if child.pump is not None:
            child.pump.join(5)  # the log file holds the child's last words once stop returns


def wait_until(check: Callable[[], bool], timeout: float, what: str, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited while waiting for {what}:\n{child.output_tail()}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    detail = f"\n{child.name} output:\n{child.output_tail()}" if child else ""
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def base_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="shop.settings", PYTHONUNBUFFERED="1", **overrides)
    return env


# --- the broker ------------------------------------------------------------------------------------------
def redis_mode() -> str:
    """SHOP_REDIS=embedded forces the pure-Python server; `auto` prefers redis-server from PATH."""
    mode = env_choice("SHOP_REDIS", "auto", ("auto", "redis-server", "embedded"))
    if mode == "auto":
        return "redis-server" if shutil.which("redis-server") else "embedded"
    return mode


def start_redis(log_dir: Path, port: int, echo: IO[str] | None = None) -> tuple[Child, str]:
    mode = redis_mode()
    if mode == "redis-server":
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(log_dir),
        ]  # fmt: skip
        name = "redis"
    else:
        argv = [PYTHON, "-m", "devstack.embedded_redis", "--host", HOST, "--port", str(port)]
        name = "redis-embedded"
    child = Child(name, argv, base_env(), log_dir, echo).start()
    url = f"redis://{HOST}:{port}/0"
    wait_until(lambda: redis_ping(url), 20, f"{name} on port {port}", child)
    return child, url


def redis_ping(url: str) -> bool:
    import redis

    return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())


# --- the sandbox ------------------------------------------------------------------------------------------
def start_sandbox(
    log_dir: Path,
    state: Path,
    http_port: int,
    smtp_port: int,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    echo: IO[str] | None = None,
) -> Child:
    ready = log_dir / "sandbox.ready.json"
    ready.unlink(missing_ok=True)
    argv = [PYTHON, "-m", "sandbox", "--host", HOST, "--port", str(http_port), "--smtp-port", str(smtp_port)]
    argv += ["--state", str(state), "--ready-file", str(ready)]
    env = base_env()
    if webhook_url:
        env.update(SANDBOX_WEBHOOK_URL=webhook_url, SANDBOX_WEBHOOK_SECRET=webhook_secret or "")
    child = Child("sandbox", argv, env, log_dir, echo).start()
    wait_until(lambda: json.loads(ready.read_text())["http_port"] == http_port, 20, "the sandbox", child)
    return child


# --- Celery and the web server ----------------------------------------------------------------------------
def start_worker(
    log_dir: Path,
    env: dict[str, str],
    name: str = "worker",
    queues: tuple[str, ...] = QUEUES,
    concurrency: int = 2,
    echo: IO[str] | None = None,
    wait: bool = True,
    app: str = "shop",
) -> Child:
    """A Celery worker of `app` (the shop's, or another Celery app such as the failure lab's naive jobs)."""
    hostname = f"{name}-{os.getpid()}@{socket.gethostname()}"
    argv = [PYTHON, "-m", "celery", "-A", app, "worker", "-n", hostname, "-Q", ",".join(queues)]
    argv += ["-c", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    # SIGUSR1: Celery's worker logs every thread's stack on it.
    child = Child(name, argv, env, log_dir, echo, stack_dump_signal=signal.SIGUSR1).start()
    if wait:
        wait_until(lambda: "ready." in child.output_tail(), 60, f"celery {name} to be ready", child)
    return child


def start_beat(
    log_dir: Path, env: dict[str, str], schedule: Path, echo: IO[str] | None = None, name: str = "beat"
) -> Child:
    argv = [PYTHON, "-m", "celery", "-A", "shop", "beat", "--schedule", str(schedule), "--loglevel", "INFO"]
    return Child(name, argv, env, log_dir, echo).start()


def start_web(log_dir: Path, env: dict[str, str], port: int, echo: IO[str] | None = None) -> Child:
    argv = [
        PYTHON, "-m", "gunicorn", "shop.wsgi:application", "--bind", f"{HOST}:{port}",
        "--workers", "2", "--threads", "4", "--graceful-timeout", "5", "--access-logfile", "-",
    ]  # fmt: skip
    child = Child("web", argv, env, log_dir, echo).start()
    wait_until(lambda: http_ok(f"http://{HOST}:{port}/healthz"), 30, f"the web server on port {port}", child)
    return child


def relay_pid(web: Child) -> int | None:
    """The relay beside a web server (gunicorn.conf.py): the child of its master running `relay`."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == web.pid and b"relay" in argv:
                return int(entry)
    return None


def http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def use_services(redis_url: str, sandbox_port: int, smtp_port: int, **extra: object) -> Callable[[], None]:
    """Point this process's settings and Celery producer at the given broker and sandbox.

    For harnesses that start the services after Django has loaded its settings (tests, benchmarks).
    Returns the function that restores the previous settings.
    """
    from django.test import override_settings

    from shop.celery import app

    sandbox_url = f"http://{HOST}:{sandbox_port}"
    override = override_settings(
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        SANDBOX_URL=sandbox_url,
        STRIPE_API_BASE=sandbox_url,
        CARRIER_API_BASE=f"{sandbox_url}/carrier/v1",
        EMAIL_PORT=smtp_port,
        **extra,
    )
    override.enable()
    app.conf.broker_url = redis_url
    return override.disable


def service_env(redis_url: str, sandbox_port: int, smtp_port: int, **extra: str) -> dict[str, str]:
    """The environment that points a child process at the same broker, sandbox and media files."""
    from django.conf import settings

    env = base_env(
        REDIS_URL=redis_url,
        SANDBOX_PORT=str(sandbox_port),
        SANDBOX_SMTP_PORT=str(smtp_port),
        STRIPE_API_BASE=f"http://{HOST}:{sandbox_port}",
        # What a worker writes (invoice PDFs), this process serves: a harness may have moved MEDIA_ROOT.
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        **extra,
    )
    env.pop("STRIPE_SECRET_KEY", None)  # harnesses always talk to the sandbox
    return env
