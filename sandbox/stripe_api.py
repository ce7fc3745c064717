"""The Stripe-compatible subset: customers, payment methods, payment intents, charges, refunds, events.

Shapes follow Stripe's API closely enough for the official SDK to build its objects and raise its
exceptions (`CardError` with `error.payment_intent`, `IdempotencyError`, ...). Unknown parameters are
accepted and ignored, as the shop may send options (receipt_email, automatic_payment_methods, ...) that
change nothing here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sandbox import webhooks
from sandbox.store import Store
from sandbox.util import new_id
from sandbox.web import ApiError, Handler, Request, Response, Router, Service, json_response, missing

API_VERSION = "2026-10-28.endive"  # what stripe-python 16 pins; events carry it as Stripe's do


@dataclass(frozen=True)
class Card:
    brand: str
    last4: str
    code: str | None = None  # error code of a declining card
    decline_code: str | None = None
    message: str = ""


CARDS = {
    "pm_card_visa": Card("visa", "4242"),
    "pm_card_mastercard": Card("mastercard", "4444"),
    "pm_card_chargeDeclined": Card(
        "visa", "0002", "card_declined", "generic_decline", "Your card was declined."
    ),
    "pm_card_chargeDeclinedInsufficientFunds": Card(
        "visa", "9995", "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "pm_card_chargeDeclinedExpiredCard": Card(
        "visa", "0069", "expired_card", "expired_card", "Your card has expired."
    ),
    # Sandbox only: an issuer whose decline message is longer than any column a shop would size for it.
    "pm_card_sandboxDeclinedVerbose": Card(
        "visa", "0119", "card_declined", "do_not_honor", "Your card was declined by its issuer. " * 12
    ),
}
CONFIRMABLE = ("requires_payment_method", "requires_confirmation")


def decode_form(text: str) -> dict[str, Any]:
    """Decode Stripe's form encoding: `metadata[k]=v` nests; `list[0]=a` becomes {"0": "a"} (lists unused)."""
    params: dict[str, Any] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        base, _, rest = name.partition("[")
        parts = [base, *rest.rstrip("]").split("][")] if rest else [base]
        node = params
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1] or str(len(node))] = value
    return params


class StripeService(Service):
    name = "payments"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        pi = r"/v1/payment_intents"
        self.router = Router(
            [
                ("POST", r"/v1/customers", self.create_customer),
                ("GET", r"/v1/customers/(?P<id>[^/]+)", self.retriever("customer")),
                ("GET", r"/v1/payment_methods/(?P<id>[^/]+)", self.retrieve_payment_method),
                ("POST", r"/v1/payment_methods/(?P<id>[^/]+)/attach", self.attach_payment_method),
                ("POST", pi, self.create_payment_intent),
                ("GET", pi, self.lister("payment_intent", pi, filter_param="customer")),
                ("GET", pi + r"/(?P<id>[^/]+)", self.retriever("payment_intent")),
                ("POST", pi + r"/(?P<id>[^/]+)/confirm", self.confirm_payment_intent),
                ("GET", r"/v1/charges/(?P<id>[^/]+)", self.retriever("charge")),
                ("POST", r"/v1/refunds", self.create_refund),
                ("GET", r"/v1/refunds", self.lister("refund", "/v1/refunds", filter_param="payment_intent")),
                ("GET", r"/v1/refunds/(?P<id>[^/]+)", self.retriever("refund")),
                ("GET", r"/v1/events", self.lister("event", "/v1/events", filter_param="type")),
                ("GET", r"/v1/events/(?P<id>[^/]+)", self.retriever("event")),
            ]
        )

    # -- Service hooks

    def render_error(self, error: ApiError) -> Response:
        default_type = {401: "authentication_error", 402: "card_error", 409: "idempotency_error"}.get(
            error.status, "api_error" if error.status >= 500 else "invalid_request_error"
        )
        body = {"type": error.type or default_type, "message": error.message, **error.extra}
        if error.code:
            body["code"] = error.code
        if error.param:
            body["param"] = error.param
        return json_response(error.status, {"error": body})

    def scope(self, request: Request) -> str:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not key.startswith("sk_"):
            raise ApiError(
                401,
                "Invalid API Key provided. The sandbox accepts any secret key starting with 'sk_' "
                "sent as 'Authorization: Bearer sk_...'.",
            )
        # Idempotency keys are scoped per API key, as on Stripe.
        return key

    def parse(self, request: Request) -> dict[str, Any]:
        return decode_form(
            request.body.decode(errors="replace") if request.method == "POST" else request.query
        )

    # -- lists

    def lister(self, kind: str, url: str, filter_param: str) -> Handler:
        """A route handler for a newest-first Stripe list, filterable on one parameter."""

        def handler(request: Request, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            limit = _int(params, "limit", default=10)
            if not 1 <= limit <= 100:
                raise ApiError(
                    400, "This value must be between 1 and 100.", "parameter_invalid_integer", param="limit"
                )
            starting_after = _optional(params, "starting_after")
            ending_before = _optional(params, "ending_before")
            if starting_after and ending_before:
                raise ApiError(
                    400,
                    "You may only specify one of starting_after and ending_before.",
                    "parameter_invalid_string",
                    param="ending_before",
                )
            try:
                data, has_more = self.store.page(
                    kind, limit, _optional(params, filter_param), starting_after, ending_before
                )
            except KeyError as unknown:
                cursor_param = "starting_after" if starting_after else "ending_before"
                raise missing(kind, unknown.args[0], cursor_param) from None
            return 200, {"object": "list", "data": data, "has_more": has_more, "url": url}

        return handler

    # -- customers and payment methods

    def create_customer(self, request: Request, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        customer = {
            "id": new_id("cus"),
            "object": "customer",
            "created": int(time.time()),
            "livemode": False,
            "email": _optional(params, "email"),
            "name": _optional(params, "name"),
            "description": _optional(params, "description"),
            "phone": _optional(params, "phone"),
            "metadata": _metadata(params),
            "balance": 0,
            "currency": None,
            "delinquent": False,
            "invoice_settings": {"default_payment_method": None},
        }
        self.store.save("customer", customer)
        return 200, customer

    def retrieve_payment_method(self, request: Request, params: dict[str, Any], id: str) -> tuple[int, Any]:
        return 200, _payment_method(id, param=None)

    def attach_payment_method(self, request: Request, params: dict[str, Any], id: str) -> tuple[int, Any]:
        # The test cards are shared fixtures, so attaching is acknowledged but not remembered.
        method = _payment_method(id, param=None)
        method["customer"] = self._get("customer", _required(params, "customer"), "customer")["id"]
        return 200, method

    # -- payment intents

    def create_payment_intent(self, request: Request, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        amount = _int(params, "amount")
        if amount < 1:
            raise ApiError(400, "Amount must be at least 1.", "amount_too_small", param="amount")
        currency = _required(params, "currency").lower()
        if len(currency) != 3 or not currency.isalpha():
            raise ApiError(
                400, f"Invalid currency: {currency}.", "parameter_invalid_string", param="currency"
            )
        customer = _optional(params, "customer")
        if customer:
            self._get("customer", customer, "customer")
        method = _optional(params, "payment_method")
        if method:
            _payment_method(method)
        intent_id = new_id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{new_id('s')[2:]}",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "currency": currency,
            "customer": customer,
            "description": _optional(params, "description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": _metadata(params),
            "payment_method": method,
            "payment_method_types": ["card"],
            "status": "requires_confirmation" if method else "requires_payment_method",
            "canceled_at": None,
            "cancellation_reason": None,
        }
        if params.get("confirm") == "true":
            return self._confirm(request, intent)
        self.store.save("payment_intent", intent, lookup=customer)
        return 200, intent

    def confirm_payment_intent(self, request: Request, params: dict[str, Any], id: str) -> tuple[int, Any]:
        intent = self._get("payment_intent", id)
        method = _optional(params, "payment_method")
        if method:
            intent["payment_method"] = _payment_method(method)["id"]
        return self._confirm(request, intent)

    def _confirm(self, request: Request, intent: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if intent["status"] not in CONFIRMABLE:
            raise ApiError(
                400,
                f"This PaymentIntent's status is {intent['status']}, it cannot be confirmed.",
                "payment_intent_unexpected_state",
                payment_intent=intent,
            )
        if not intent["payment_method"]:
            raise ApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                "payment_intent_unexpected_state",
                param="payment_method",
                payment_intent=intent,
            )
        method = _payment_method(intent["payment_method"])
        card = CARDS[method["id"]]
        charge = self._charge(intent, method, card)
        intent["latest_charge"] = charge["id"]
        if card.code:
            failure = {
                "type": "card_error",
                "code": card.code,
                "decline_code": card.decline_code,
                "message": card.message,
                "charge": charge["id"],
                "payment_method": method,
            }
            if card.code == "expired_card":
                failure["param"] = "exp_month"
            # As on Stripe, a declined intent drops its payment method and waits for a new one.
            intent.update(status="requires_payment_method", payment_method=None, last_payment_error=failure)
            self._save_with_event(request, "payment_intent", intent, "payment_intent.payment_failed")
            return 402, {"error": {**failure, "payment_intent": intent}}
        intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
        self._save_with_event(request, "payment_intent", intent, "payment_intent.succeeded")
        return 200, intent

    def _charge(self, intent: dict[str, Any], method: dict[str, Any], card: Card) -> dict[str, Any]:
        paid = card.code is None
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if paid else 0,
            "amount_refunded": 0,
            "captured": paid,
            "created": int(time.time()),
            "currency": intent["currency"],
            "customer": intent["customer"],
            "description": intent["description"],
            "failure_code": card.code,
            "failure_message": card.message or None,
            "livemode": False,
            "metadata": intent["metadata"],
            "paid": paid,
            "payment_intent": intent["id"],
            "payment_method": method["id"],
            "payment_method_details": {"type": "card", "card": method["card"]},
            "refunded": False,
            "status": "succeeded" if paid else "failed",
        }
        self.store.save("charge", charge)
        return charge

    # -- refunds

    def create_refund(self, request: Request, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent_id, charge_id = _optional(params, "payment_intent"), _optional(params, "charge")
        if intent_id:
            intent = self._get("payment_intent", intent_id, "payment_intent")
            if intent["status"] != "succeeded":
                raise ApiError(
                    400,
                    f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                    "charge_not_refundable",
                    param="payment_intent",
                )
            charge = self._get("charge", intent["latest_charge"], "payment_intent")
        elif charge_id:
            charge = self._get("charge", charge_id, "charge")
            if charge["status"] != "succeeded":
                raise ApiError(
                    400, f"Charge {charge['id']} has not succeeded.", "charge_not_refundable", param="charge"
                )
        else:
            raise ApiError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                "parameter_missing",
                param="payment_intent",
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining == 0:
            raise ApiError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                "charge_already_refunded",
                param="charge",
            )
        amount = _int(params, "amount", default=remaining)
        if amount < 1:
            raise ApiError(
                400, "Refund amount must be at least 1.", "parameter_invalid_integer", param="amount"
            )
        if amount > remaining:
            raise ApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
                "amount_too_large",
                param="amount",
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "metadata": _metadata(params),
            "payment_intent": charge["payment_intent"],
            "reason": _optional(params, "reason"),
            "status": "succeeded",
        }
        self.store.save("refund", refund, lookup=charge["payment_intent"])
        charge.update(amount_refunded=charge["amount_refunded"] + amount, refunded=amount == remaining)
        self._save_with_event(request, "charge", charge, "charge.refunded")
        return 200, refund

    # -- events

    def _save_with_event(self, request: Request, kind: str, obj: dict[str, Any], event_type: str) -> None:
        lookup = obj.get("customer") if kind == "payment_intent" else None
        self.store.save(kind, obj, lookup=lookup)
        delivering = bool(self.store.webhook["url"])
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": int(delivering),
            "request": {"id": request.id, "idempotency_key": request.headers.get("Idempotency-Key")},
            "type": event_type,
        }
        self.store.save("event", event, lookup=event_type)
        if delivering:
            webhooks.enqueue(self.store, event["id"])


def _payment_method(method_id: str, param: str | None = "payment_method") -> dict[str, Any]:
    card = CARDS.get(method_id)
    if card is None:
        raise missing("payment_method", method_id, param)
    return {
        "id": method_id,
        "object": "payment_method",
        "type": "card",
        "card": {
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": 12,
            "exp_year": 2034,
            "funding": "credit",
            "country": "US",
        },
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "created": 1700000000,
        "customer": None,
        "livemode": False,
        "metadata": {},
    }


def _optional(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(
            400, f"Invalid string: {name} must be a string.", "parameter_invalid_string", param=name
        )
    return value or None


def _required(params: dict[str, Any], name: str) -> str:
    value = _optional(params, name)
    if value is None:
        raise ApiError(400, f"Missing required param: {name}.", "parameter_missing", param=name)
    return value


def _int(params: dict[str, Any], name: str, default: int | None = None) -> int:
    if name not in params and default is not None:
        return default
    value = _required(params, name)
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"Invalid integer: {value}", "parameter_invalid_integer", param=name) from None


def _metadata(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata", {})
    # The SDK sends `metadata=` (empty) to clear; anything else that is not a mapping is malformed.
    if metadata == "":
        return {}
    if not isinstance(metadata, dict) or any(isinstance(v, dict) for v in metadata.values()):
        raise ApiError(
            400, "Invalid metadata: must be a hash of strings.", "parameter_invalid_object", param="metadata"
        )
    return metadata
