"""The control API under /_sandbox/: faults, inspection, reset, webhook config. Never subject to faults."""

from __future__ import annotations

import json
from typing import Any

from sandbox import faults, smtp, webhooks
from sandbox.store import Store
from sandbox.web import Handler, Request, Response, Router, json_response

_PAYMENT = ("id", "amount", "currency", "status", "metadata", "created")
# Inspection lists: path -> (kind of object, fields shown), every object oldest first.
LISTINGS = {
    "/_sandbox/payments/payment_intents": (
        "payment_intent",
        (*_PAYMENT, "customer", "latest_charge", "last_payment_error"),
    ),
    "/_sandbox/payments/refunds": ("refund", (*_PAYMENT, "payment_intent", "charge")),
    "/_sandbox/carrier/shipments": (
        "shipment",
        ("id", "reference", "address", "tracking_number", "created_at"),
    ),
    "/_sandbox/carrier/registrations": (
        "registration",
        ("id", "reference", "address", "plan", "status", "created_at", "cancelled_at"),
    ),
}


class Control:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.router = Router(
            [
                ("GET", "/_sandbox/health", lambda r: {"ok": True}),
                ("GET", "/_sandbox/faults", lambda r: self.store.faults),
                ("DELETE", "/_sandbox/faults", self.clear_faults),
                ("PUT", "/_sandbox/faults/(?P<service>[^/]+)", self.set_faults),
                ("GET", "/_sandbox/stats", lambda r: self.store.stats()),
                ("POST", "/_sandbox/reset", self.reset),
                ("GET", "/_sandbox/mail/messages", lambda r: smtp.list_messages(self.store)),
                ("GET", "/_sandbox/mail/messages/(?P<message_id>[^/]+)", self.raw_message),
                ("GET", "/_sandbox/webhooks", lambda r: self.store.webhook),
                ("PUT", "/_sandbox/webhooks", self.set_webhook),
                ("GET", "/_sandbox/webhooks/deliveries", lambda r: webhooks.deliveries(self.store)),
                *[("GET", path, self.summaries(kind, fields)) for path, (kind, fields) in LISTINGS.items()],
            ]
        )

    def __call__(self, request: Request) -> Response:
        found = self.router.match(request.method, request.path)
        if found is None:
            return _error(404, f"no control endpoint {request.method} {request.path}")
        handler, path_args = found
        try:
            result = handler(request, **path_args)
        except ValueError as error:
            return _error(400, str(error))
        return result if isinstance(result, Response) else json_response(200, result)

    def set_faults(self, request: Request, service: str) -> Any:
        return self.store.set_faults(service, faults.validate(service, _json(request)))

    def clear_faults(self, request: Request) -> Any:
        self.store.clear_faults()
        return self.store.faults

    def reset(self, request: Request) -> Any:
        self.store.reset()
        return {"ok": True}

    def raw_message(self, request: Request, message_id: str) -> Response:
        raw = smtp.raw_message(self.store, message_id)
        if raw is None:
            return _error(404, f"no message {message_id}")
        return Response(200, raw, content_type="message/rfc822")

    def summaries(self, kind: str, fields: tuple[str, ...]) -> Handler:
        return lambda request: Response(200, self.store.summaries(kind, fields))

    def set_webhook(self, request: Request) -> Any:
        body = _json(request)
        url, secret = body.get("url"), body.get("secret")
        if not isinstance(url, str | None) or not isinstance(secret, str | None):
            raise ValueError("url and secret must be strings (or null to stop delivering)")
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http:// or https:// URL")
        self.store.set_webhook(url or None, secret)
        return self.store.webhook


def _json(request: Request) -> Any:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ValueError("body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})
