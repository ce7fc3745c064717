"""HTTP plumbing: request/response types, routing, the faultable service pipeline and the server."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

from sandbox.store import Store
from sandbox.util import new_id


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: Message
    body: bytes
    id: str = field(default_factory=lambda: new_id("req"))


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # Close the connection without answering (the drop_after_commit fault).
    drop: bool = False


def json_response(status: int, payload: Any, **headers: str) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=headers)


class ApiError(Exception):
    """An error answer. Raised inside a transaction it rolls back and no idempotent result is saved."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        type: str | None = None,
        param: str | None = None,
        fault: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.type, self.param, self.extra = type, param, extra
        # Counted as "rejected" in the stats: the refusal came from an injected fault.
        self.fault = fault


Handler = Callable[..., Any]


def missing(kind: str, object_id: str, param: str | None) -> ApiError:
    return ApiError(
        404 if param is None else 400,
        f"No such {kind}: '{object_id}'",
        "resource_missing",
        param=param or "id",
    )


class Router:
    def __init__(self, routes: list[tuple[str, str, Handler]]) -> None:
        self._routes = [(method, re.compile(pattern), handler) for method, pattern, handler in routes]

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        for route_method, pattern, handler in self._routes:
            found = pattern.fullmatch(path)
            if found and route_method == method:
                return handler, found.groupdict()
        return None


class Service:
    """A faultable API: outage and error-rate gate, latency, idempotency keys, drop-after-commit, stats.

    Subclasses set `name` and `router` and implement `render_error`, `scope` and `parse`; route handlers
    take (request, params, **path_args) and return (status, payload). They run inside one transaction.
    """

    name: str
    router: Router

    def __init__(self, store: Store) -> None:
        self.store = store
        self._in_flight: set[tuple[str, str]] = set()
        self._rate_window = SlidingWindow()

    def render_error(self, error: ApiError) -> Response:
        raise NotImplementedError

    def scope(self, request: Request) -> str:
        """Authenticate and name the namespace idempotency keys live in."""
        raise NotImplementedError

    def parse(self, request: Request) -> Any:
        raise NotImplementedError

    def _get(self, kind: str, object_id: str, param: str | None = None) -> dict[str, Any]:
        """Load an object; missing is a 404 when the URL names it, a 400 when a parameter does (as Stripe)."""
        obj = self.store.get(kind, object_id)
        if obj is None:
            raise missing(kind, object_id, param)
        return obj

    def retriever(self, kind: str) -> Handler:
        """A route handler answering GET <collection>/<id> for one kind of object."""

        def handler(request: Request, params: Any, id: str) -> tuple[int, dict[str, Any]]:
            return 200, self._get(kind, id)

        return handler

    def handle(self, request: Request) -> Response:
        faults = self.store.faults[self.name]
        rejected = False
        try:
            self._gate(faults)
            response = self._dispatch(request, faults)
        except ApiError as error:
            response, rejected = self.render_error(error), error.fault
        self.store.count(self.name, rejected=rejected, succeeded=response.drop or response.status < 300)
        return response

    def _gate(self, faults: dict[str, Any]) -> None:
        if faults["outage"]:
            raise ApiError(503, f"The {self.name} service is unavailable (sandbox outage).", fault=True)
        limit = faults.get("rate_limit_per_second")
        if limit and not self._rate_window.admit(limit):
            # Stripe's shape: the SDK raises RateLimitError for a 429. Nothing runs, no key is saved.
            raise ApiError(
                429,
                f"Request rate limit exceeded: {limit} requests per second (sandbox rate_limit_per_second).",
                "rate_limit",
                type="invalid_request_error",
                fault=True,
            )
        if faults["error_rate"] and random.random() < faults["error_rate"]:
            raise ApiError(500, f"The {self.name} service failed (sandbox error_rate).", fault=True)

    def _dispatch(self, request: Request, faults: dict[str, Any]) -> Response:
        found = self.router.match(request.method, request.path)
        if found is None:
            raise ApiError(404, f"Unrecognized request URL ({request.method}: {request.path}).")
        handler, path_args = found
        scope = self.scope(request)
        params = self.parse(request)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key:
            fingerprint = hashlib.sha256(
                f"{request.method} {request.path} {json.dumps(params, sort_keys=True)}".encode()
            ).hexdigest()
            replay = self._claim(scope, key, fingerprint)
            if replay is not None:
                _pause(faults)
                return replay
        try:
            _pause(faults)
            with self.store.transaction():
                status, payload = handler(request, params, **path_args)
                response = json_response(status, payload)
                if key:
                    self.store.save_idempotent_result(scope, key, fingerprint, status, response.body)
        finally:
            if key:
                with self.store.lock:
                    self._in_flight.discard((scope, key))
        # Only writes are dropped: a dropped read could never be healed by a retry.
        response.drop = faults["drop_after_commit"] and request.method != "GET"
        return response

    def _claim(self, scope: str, key: str, fingerprint: str) -> Response | None:
        """Return the saved response to replay, or mark the key in flight and return None."""
        with self.store.lock:
            if (scope, key) in self._in_flight:
                raise ApiError(
                    409,
                    f"There is currently another in-progress request using this Idempotent Key: {key}. "
                    "Please retry later.",
                    "idempotency_key_in_use",
                    type="idempotency_error",
                )
            saved = self.store.idempotent_result(scope, key)
            if saved is None:
                self._in_flight.add((scope, key))
                return None
        saved_fingerprint, status, body = saved
        if saved_fingerprint != fingerprint:
            raise ApiError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were first "
                f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                "idempotency_key_reused",
                type="idempotency_error",
            )
        return Response(status, body, headers={"Idempotent-Replayed": "true"})


class SlidingWindow:
    """Admits at most `limit` requests in any one-second window; a refused request takes no place in it.

    The strictest reading of "N requests per second": no second, wherever it starts, holds more than N.
    """

    def __init__(self) -> None:
        self._admitted: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, limit: int) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._admitted and self._admitted[0] <= now - 1.0:
                self._admitted.popleft()
            if len(self._admitted) >= limit:
                return False
            self._admitted.append(now)
            return True


def _pause(faults: dict[str, Any]) -> None:
    if faults["latency_ms"]:
        time.sleep(faults["latency_ms"] / 1000)


class App:
    """Routes a request to the service owning its path prefix."""

    def __init__(self, services: dict[str, Callable[[Request], Response]]) -> None:
        self._services = services

    def __call__(self, request: Request) -> Response:
        for prefix, service in self._services.items():
            if request.path.startswith(prefix):
                try:
                    return service(request)
                except Exception:
                    traceback.print_exc(file=sys.stderr)
                    return json_response(500, {"error": {"type": "api_error", "message": "sandbox bug"}})
        return json_response(404, {"error": {"message": f"no sandbox service at {request.path}"}})


class QuietDisconnects:
    """Server mixin: a client hanging up or timing out is routine here, not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[misc]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the Stripe SDK reuses its connection
    server_version = "sandbox"
    sys_version = ""
    # Buffer the status line, headers and body into one send; with Nagle off that avoids delayed-ACK stalls.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections eventually free their thread
    server: HttpServer

    def _serve(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            self.send_error(411, "send a Content-Length; chunked bodies are not supported")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        url = urlsplit(self.path)
        request = Request(self.command, url.path, url.query, self.headers, self.rfile.read(length))
        response = self.server.app(request)
        if response.drop:
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: per-request logging costs throughput and buries the useful output."""


class HttpServer(QuietDisconnects, ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can stall startup; it is not needed here.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def serve_in_thread(server: TCPServer) -> threading.Thread:
    # A short poll interval makes shutdown() quick, so a SIGTERM stops the sandbox in well under a second.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=type(server).__name__, daemon=True
    )
    thread.start()
    return thread
