"""Run a sandbox as a subprocess and drive its control API: for tests and benchmarks.

sandbox = SandboxProcess.start(tmp_path / "sandbox.sqlite3")
stripe_client = stripe.StripeClient("sk_test_x", base_addresses={"api": sandbox.api_base})
sandbox.set_fault("payments", outage=True)
...
sandbox.stop()
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# Control calls go straight to 127.0.0.1, whatever proxy the environment configures.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SandboxError(RuntimeError):
    pass


class SandboxControl:
    """The sandbox's control API (`/_sandbox/...`) at a base URL, wherever the sandbox runs."""

    def __init__(self, api_base: str) -> None:
        self.api_base = api_base.rstrip("/")

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """Call a control endpoint and return its decoded JSON (raw bytes for non-JSON answers)."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.api_base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with _opener.open(request, timeout=30) as response:
                body = response.read()
                is_json = response.headers.get_content_type() == "application/json"
        except urllib.error.HTTPError as error:
            raise SandboxError(
                f"{method} {path}: HTTP {error.code}: {error.read().decode(errors='replace')}"
            ) from None
        return json.loads(body) if is_json else body

    def reset(self) -> None:
        self.request("POST", "/_sandbox/reset")

    def set_fault(self, service: str, **fields: Any) -> dict[str, Any]:
        return self.request("PUT", f"/_sandbox/faults/{service}", fields)

    def clear_faults(self) -> None:
        self.request("DELETE", "/_sandbox/faults")

    def faults(self) -> dict[str, Any]:
        return self.request("GET", "/_sandbox/faults")

    def stats(self) -> dict[str, dict[str, int]]:
        return self.request("GET", "/_sandbox/stats")

    def mail_messages(self) -> list[dict[str, Any]]:
        return self.request("GET", "/_sandbox/mail/messages")

    def mail_message(self, message_id: str) -> bytes:
        """The raw RFC 822 bytes of one caught message."""
        return self.request("GET", f"/_sandbox/mail/messages/{message_id}")

    def shipments(self) -> list[dict[str, Any]]:
        return self.request("GET", "/_sandbox/carrier/shipments")

    def registrations(self) -> list[dict[str, Any]]:
        return self.request("GET", "/_sandbox/carrier/registrations")

    def payment_intents(self) -> list[dict[str, Any]]:
        return self.request("GET", "/_sandbox/payments/payment_intents")

    def refunds(self) -> list[dict[str, Any]]:
        return self.request("GET", "/_sandbox/payments/refunds")

    def set_webhook(self, url: str | None, secret: str | None) -> None:
        self.request("PUT", "/_sandbox/webhooks", {"url": url, "secret": secret})

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return self.request("GET", "/_sandbox/webhooks/deliveries")


class SandboxProcess(SandboxControl):
    """A sandbox subprocess this code started, with the control API of `SandboxControl`."""

    def __init__(
        self, process: subprocess.Popen[bytes], host: str, ready: dict[str, int], workdir: Path
    ) -> None:
        super().__init__(f"http://{host}:{ready['http_port']}")
        self.process = process
        self.host = host
        self.http_port: int = ready["http_port"]
        self.smtp_port: int = ready["smtp_port"]
        self._workdir = workdir

    @classmethod
    def start(
        cls,
        state_path: str | os.PathLike[str],
        http_port: int = 0,
        smtp_port: int = 0,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        env: dict[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        timeout: float = 15.0,
    ) -> SandboxProcess:
        """Launch `python -m sandbox` with this interpreter and return once it listens (ports known)."""
        workdir = Path(tempfile.mkdtemp(prefix="sandbox-"))
        ready_file, log_path = workdir / "ready.json", workdir / "sandbox.log"
        child_env = {**os.environ, **(env or {})}
        # The child must import this very package, wherever the caller runs from.
        package_root = str(Path(__file__).resolve().parent.parent)
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, child_env.get("PYTHONPATH")]))
        if webhook_url is not None:
            child_env["SANDBOX_WEBHOOK_URL"] = webhook_url
        if webhook_secret is not None:
            child_env["SANDBOX_WEBHOOK_SECRET"] = webhook_secret
        command = [
            sys.executable, "-m", "sandbox", "--host", host, "--port", str(http_port),
            "--smtp-port", str(smtp_port), "--state", str(state_path), "--ready-file", str(ready_file),
        ]  # fmt: skip
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env)
        deadline = time.monotonic() + timeout
        while not ready_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                process.wait()
                output = log_path.read_text(errors="replace")
                shutil.rmtree(workdir, ignore_errors=True)
                raise SandboxError(f"sandbox did not start (exit code {process.returncode}):\n{output}")
            time.sleep(0.02)
        return cls(process, host, json.loads(ready_file.read_text()), workdir)

    @property
    def output(self) -> str:
        """What the sandbox printed so far (its stdout and stderr)."""
        return (self._workdir / "sandbox.log").read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, kill if it hangs; returns the exit code (0 for a clean stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
