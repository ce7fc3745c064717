"""Where the running services are, and the local state folder (`var/`) that says so.

`python manage.py demo` starts the broker and the sandbox (possibly on free ports) and writes their
addresses to `var/runtime.json`. Settings read that file, so any other `manage.py` command started in
the project folder while the demo runs reaches the same broker and sandbox with no extra setup.
Environment variables always win over the file.

The file's writer and its reader share this module, so its format lives in one place. Settings import
it while they load: it must stay a leaf, importing nothing from Django or the project but envconfig.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from envconfig import env_path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("SHOP_VAR_DIR", BASE_DIR / "var")
RUNTIME_FILE = VAR_DIR / "runtime.json"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_runtime() -> dict[str, Any]:
    """The demo's published addresses, or {} when no demo is running."""
    try:
        data = json.loads(RUNTIME_FILE.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not pid_alive(int(data.get("pid", 0) or 0)):
        return {}
    return data


def write_runtime(data: dict[str, Any]) -> None:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    tmp = RUNTIME_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(RUNTIME_FILE)


def clear_runtime() -> None:
    RUNTIME_FILE.unlink(missing_ok=True)


def local_secret(name: str) -> str:
    """A random per-checkout secret kept under var/ (never in the repository)."""
    import secrets

    path = VAR_DIR / f"{name}.secret"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: a concurrent first run keeps exactly one secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
