"""gunicorn's settings for the shop's web server: gunicorn reads ./gunicorn.conf.py by itself.

Beside the server runs the relay (`python manage.py relay`, jobkit/relay.py): requests stage their jobs
in their own transaction and the relay sends the messages, so a checkout does not wait for the broker.
One relay per server; several (more servers) share the work safely. The master starts it again when it
exits on its own (killed, crashed), as it does its workers; meanwhile the recovery sweep sends what waits.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from devstack.processes import die_with_parent

# A relay that keeps dying is started again at most once a second: a crash loop costs little, and a
# relay killed once is back within a second, well inside the recovery sweep's interval.
RELAY_RESTART_DELAY_SECONDS = 1.0

_relay: subprocess.Popen[bytes] | None = None
_stopping = threading.Event()


def _start_relay() -> subprocess.Popen[bytes]:
    """The relay, stopped by the kernel if the thread that started it ends (the master killed outright)."""
    manage = str(Path(__file__).resolve().parent / "manage.py")
    return subprocess.Popen([sys.executable, manage, "relay"], preexec_fn=die_with_parent)


def _supervise_relay(log: Any) -> None:
    global _relay
    while _relay is not None:
        # Returns when the relay exits. Not its exit code: gunicorn's master reaps every child it has,
        # so this wait can find the relay reaped already (and Python then reports code 0).
        _relay.wait()
        if _stopping.wait(RELAY_RESTART_DELAY_SECONDS):
            return
        log.warning("The relay exited; starting it again.")
        _relay = _start_relay()


def on_starting(server: Any) -> None:
    """In the master, before any worker: start the relay, and a thread that starts it again whenever
    it exits while the server runs."""
    global _relay
    _relay = _start_relay()
    threading.Thread(
        target=_supervise_relay, args=(server.log,), name="relay-supervisor", daemon=True
    ).start()


def post_worker_init(worker: Any) -> None:
    """In each worker, once the shop is loaded: leave sending jobs' messages to the relay."""
    from jobkit.enqueue import stage_for_relay

    stage_for_relay()


def on_exit(server: Any) -> None:
    _stopping.set()
    if _relay is not None and _relay.poll() is None:
        _relay.terminate()
        try:
            _relay.wait(10)
        except subprocess.TimeoutExpired:
            _relay.kill()
