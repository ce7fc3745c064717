"""Wires the store, the HTTP services, the SMTP catcher and the webhook deliverer into one sandbox."""

from __future__ import annotations

from sandbox.carrier import CarrierService
from sandbox.control import Control
from sandbox.smtp import SmtpServer
from sandbox.store import Store
from sandbox.stripe_api import StripeService
from sandbox.web import App, HttpServer, serve_in_thread
from sandbox.webhooks import Deliverer


class Sandbox:
    """All listeners of one sandbox; binding happens in the constructor, so ports are known right away."""

    def __init__(self, store: Store, host: str, http_port: int, smtp_port: int) -> None:
        self.store = store
        app = App(
            {
                "/_sandbox/": Control(store),
                "/carrier/": CarrierService(store).handle,
                "/v1/": StripeService(store).handle,
            }
        )
        self.http = HttpServer((host, http_port), app)
        self.smtp = SmtpServer((host, smtp_port), store)
        self.deliverer = Deliverer(store)

    @property
    def http_port(self) -> int:
        return self.http.server_address[1]

    @property
    def smtp_port(self) -> int:
        return self.smtp.server_address[1]

    def start(self) -> None:
        serve_in_thread(self.http)
        serve_in_thread(self.smtp)
        self.deliverer.start()

    def stop(self) -> None:
        for server in (self.http, self.smtp):
            server.shutdown()
            server.server_close()
        self.deliverer.stop()
        self.store.close()
