"""gunicorn's settings for the shop's web server: gunicorn reads ./gunicorn.conf.py by itself.

Beside the server runs the relay (`python manage.py relay`, jobkit/relay.py): requests stage their jobs
in their own transaction and the relay sends the messages, so a checkout does not wait for the broker.
One relay per server; several (more servers) share the work safely.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from devstack.processes import die_with_parent

_relay: subprocess.Popen[bytes] | None = None


def on_starting(server: Any) -> None:
    """In the master, before any worker: start the relay, stopped with the master (and by the kernel
    if the master is killed outright)."""
    global _relay
    manage = str(Path(__file__).resolve().parent / "manage.py")
    _relay = subprocess.Popen([sys.executable, manage, "relay"], preexec_fn=die_with_parent)


def post_worker_init(worker: Any) -> None:
    """In each worker, once the shop is loaded: leave sending jobs' messages to the relay."""
    from jobkit.enqueue import stage_for_relay

    stage_for_relay()


def on_exit(server: Any) -> None:
    if _relay is not None and _relay.poll() is None:
        _relay.terminate()
        try:
            _relay.wait(10)
        except subprocess.TimeoutExpired:
            _relay.kill()
