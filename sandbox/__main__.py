"""`python -m sandbox`: run the sandbox until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from envconfig import env_int, env_path, env_str
from sandbox.server import Sandbox
from sandbox.store import Store

DEFAULT_WEBHOOK_SECRET = "whsec_sandbox"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Stripe-compatible API, carrier API, SMTP catcher and fault control in one process. "
        "SANDBOX_WEBHOOK_URL and SANDBOX_WEBHOOK_SECRET set the initial webhook target.",
    )
    parser.add_argument("--host", default=env_str("SANDBOX_HOST", "127.0.0.1"), help="env SANDBOX_HOST")
    parser.add_argument(
        "--port",
        type=int,
        default=env_int("SANDBOX_PORT", 12111),
        help="HTTP port, 0 = any (SANDBOX_PORT)",
    )
    parser.add_argument(
        "--smtp-port",
        type=int,
        default=env_int("SANDBOX_SMTP_PORT", 1025),
        help="SMTP port, 0 = any (SANDBOX_SMTP_PORT)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=env_path("SANDBOX_STATE", Path("var/sandbox.sqlite3")),
        help="SQLite state file (SANDBOX_STATE: an absolute path)",
    )
    parser.add_argument(
        "--ready-file", type=Path, help="write {http_port, smtp_port, pid} here once listening"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.state.parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.state)
    # The environment sets the initial webhook target; a later PUT /_sandbox/webhooks overrides it.
    webhook_url = env_str("SANDBOX_WEBHOOK_URL")
    if webhook_url:
        store.set_webhook(webhook_url, env_str("SANDBOX_WEBHOOK_SECRET", DEFAULT_WEBHOOK_SECRET))

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    try:
        sandbox = Sandbox(store, args.host, args.port, args.smtp_port)
    except OSError as error:
        print(f"sandbox: cannot listen on {args.host}: {error}", file=sys.stderr)
        return 1
    sandbox.start()
    url = f"http://{args.host}:{sandbox.http_port}"
    print(f"sandbox: HTTP on {url} (Stripe {url}/v1, carrier {url}/carrier/v1, control {url}/_sandbox)")
    print(f"sandbox: SMTP mail catcher on {args.host}:{sandbox.smtp_port}")
    print(f"sandbox: state in {args.state}", flush=True)
    if args.ready_file:
        ready = {"http_port": sandbox.http_port, "smtp_port": sandbox.smtp_port, "pid": os.getpid()}
        # Write then rename, so a watcher never reads a half-written file.
        partial = args.ready_file.with_name(args.ready_file.name + ".tmp")
        partial.write_text(json.dumps(ready))
        partial.replace(args.ready_file)

    # A timed wait keeps the main thread responsive to signals on every platform.
    while not stopping.wait(0.5):
        pass
    sandbox.stop()
    print("sandbox: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
