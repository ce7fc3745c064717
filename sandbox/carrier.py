"""The carrier (shipping) API: shipments and recurring-delivery registrations, JSON in and out.

Only an `Idempotency-Key` header makes a create safe to repeat: without one every POST books another
shipment, so a test can catch a shop that sends the same order twice.
"""

from __future__ import annotations

import json
import random
from typing import Any

from sandbox.store import Store
from sandbox.util import new_id, now_iso
from sandbox.web import ApiError, Request, Response, Router, Service, json_response

PREFIX = "/carrier/v1"


class CarrierService(Service):
    name = "carrier"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.router = Router(
            [
                ("POST", PREFIX + "/shipments", self.create_shipment),
                ("GET", PREFIX + r"/shipments/(?P<id>[^/]+)", self.retriever("shipment")),
                ("POST", PREFIX + "/registrations", self.create_registration),
                ("GET", PREFIX + r"/registrations/(?P<id>[^/]+)", self.retriever("registration")),
                ("DELETE", PREFIX + r"/registrations/(?P<id>[^/]+)", self.cancel_registration),
            ]
        )

    def render_error(self, error: ApiError) -> Response:
        code = error.code or {503: "service_unavailable"}.get(error.status, "internal_error")
        return json_response(
            error.status, {"error": {"code": code, "message": error.message, "field": error.param}}
        )

    def scope(self, request: Request) -> str:
        return "carrier"

    def parse(self, request: Request) -> Any:
        if request.method != "POST":
            return {}
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.", "invalid_body")
        return body

    def create_shipment(self, request: Request, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fields = _strings(params, "reference", "address")
        if not isinstance(params.get("items"), list):
            raise ApiError(400, "items must be a list.", "invalid_field", param="items")
        shipment = {
            "id": new_id("shp"),
            **fields,
            "items": params["items"],
            "tracking_number": f"SBX{random.randrange(10**11, 10**12)}",
            "status": "requested",
            "created_at": now_iso(),
        }
        self.store.save("shipment", shipment)
        return 201, shipment

    def create_registration(self, request: Request, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.store.faults["carrier"]["reject_registrations"]:
            raise ApiError(
                422,
                "The carrier refuses new registrations (sandbox fault).",
                "registration_rejected",
                fault=True,
            )
        registration = {
            "id": new_id("reg"),
            **_strings(params, "reference", "address", "plan"),
            "status": "active",
            "created_at": now_iso(),
            "cancelled_at": None,
        }
        self.store.save("registration", registration)
        return 201, registration

    def cancel_registration(self, request: Request, params: Any, id: str) -> tuple[int, dict[str, Any]]:
        registration = self._get("registration", id)
        if registration["status"] != "cancelled":
            registration.update(status="cancelled", cancelled_at=now_iso())
            self.store.save("registration", registration)
        return 200, registration


def _strings(params: dict[str, Any], *names: str) -> dict[str, str]:
    for name in names:
        value = params.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ApiError(
                400, f"{name} is required and must be a non-empty string.", "invalid_field", param=name
            )
    return {name: params[name] for name in names}
