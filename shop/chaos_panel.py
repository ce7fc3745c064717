"""The ops page's chaos panel: starts a fault campaign (`python -m chaos`) in the background, one at a
time, and reads the progress file it keeps.

The campaign runs a stack of its own on free ports (its own broker, sandbox, workers and web server), so
it never touches the demo's processes. The shop imports nothing from chaos/ (chaos imports the shop to
build and check it; pyproject.toml's import contract keeps it one-way): the boundary is the command line
and the JSON progress file, whose format chaos/progress.py describes.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from typing import Any

from devstack.runtime import BASE_DIR, VAR_DIR

FOLDER = VAR_DIR / "chaos" / "panel"
PROGRESS_FILE, LOG_FILE, LOCK_FILE = "progress.json", "campaign.log", "campaign.lock"
# The sizes offered. Small is the reduced campaign of tests/e2e/test_chaos.py: a few minutes.
PRESETS: dict[str, dict[str, int]] = {
    "small": {"orders": 40, "signups": 10, "subscriptions": 200, "kills": 3},
    "full": {"orders": 500, "signups": 200, "subscriptions": 2000, "kills": 10},  # make chaos
}


class Busy(Exception):
    """A campaign is running already."""


def start(seed: int | None, preset: str) -> int:
    """Start a campaign detached from the caller (seed None: the campaign draws one and records it); its
    pid. Raises Busy while another one runs."""
    folder = FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    lock = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            # Held by the campaign from here on: it inherits this descriptor and keeps it open until it
            # exits, however it exits, so the lock says "running" exactly as long as it is.
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy("A chaos campaign is running already: wait for it to end.") from None
        (folder / PROGRESS_FILE).unlink(missing_ok=True)  # the last campaign's
        sizes = [f"--{name}={value}" for name, value in PRESETS[preset].items()]
        seeded = [] if seed is None else [f"--seed={seed}"]
        argv = [sys.executable, "-m", "chaos", *seeded, *sizes, f"--progress-file={folder / PROGRESS_FILE}"]
        with open(folder / LOG_FILE, "wb") as log:
            child = subprocess.Popen(
                argv,
                cwd=BASE_DIR,
                env=campaign_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(lock,),
                start_new_session=True,  # not in the web server's process group: a stop of it spares this
            )
    finally:
        os.close(lock)
    threading.Thread(target=child.wait, name="chaos-reaper", daemon=True).start()  # no zombie left behind
    return child.pid


def campaign_env() -> dict[str, str]:
    """The caller's environment, less what would point the campaign at the demo's own services."""
    env = dict(os.environ)
    # With REDIS_URL the campaign would flush that server's database: it starts a broker of its own.
    env.pop("REDIS_URL", None)
    # A PostgreSQL server gets a database of the campaign's own; any other DATABASE_URL (the demo's SQLite
    # file) is not for it: it makes a SQLite file of its own.
    if not env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        env.pop("DATABASE_URL", None)
    return env


def running() -> bool:
    try:
        lock = os.open(FOLDER / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: pages asking at once do not collide
    except BlockingIOError:
        return True
    finally:
        os.close(lock)  # closing releases the lock if we took it
    return False


def status() -> dict[str, Any]:
    """{"running", "progress": the progress file (None before the campaign writes it), "log"}."""
    try:
        progress = json.loads((FOLDER / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        progress = None
    return {"running": running(), "progress": progress, "log": str(FOLDER / LOG_FILE)}
