"""Fixtures for the sandbox's own tests: one sandbox process per session, reset before every test."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe

from sandbox.testing import SandboxProcess

API_KEY = "sk_test_sandbox"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    process = SandboxProcess.start(tmp_path_factory.mktemp("sandbox") / "state.sqlite3")
    yield process
    assert process.stop() == 0, process


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: SandboxProcess) -> None:
    sandbox.reset()
    sandbox.set_webhook(None, None)


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def make_client(sandbox: SandboxProcess) -> Callable[[int], stripe.StripeClient]:
    """SDK clients with a chosen number of network retries."""

    def make(retries: int) -> stripe.StripeClient:
        return stripe.StripeClient(
            API_KEY, base_addresses={"api": sandbox.api_base}, max_network_retries=retries
        )

    return make


@pytest.fixture
def client(make_client: Callable[[int], stripe.StripeClient]) -> stripe.StripeClient:
    """An SDK client that does not retry, so every fault shows up as it is."""
    return make_client(0)


@dataclass
class Receiver:
    """A local webhook endpoint: records each POST (body, Stripe-Signature) and answers from `statuses`."""

    url: str
    received: queue.Queue[tuple[bytes, str]] = field(default_factory=queue.Queue)
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200

    def take(self, count: int, timeout: float = 5.0) -> list[tuple[bytes, str]]:
        return [self.received.get(timeout=timeout) for _ in range(count)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = hook.statuses.pop(0) if hook.statuses else 200
            hook.received.put((body, self.headers.get("Stripe-Signature", "")))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Receiver(f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"
