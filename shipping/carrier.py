"""The carrier (shipping) HTTP API. A failed call becomes the answer it got (none, or an HTTP status),
which `jobkit.outside` classifies as it does for every outside service."""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings

from jobkit.outside import http_error, no_answer, outside_call

_session = requests.Session()


def create_shipment(reference: str, address: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Ask the carrier to ship; the Idempotency-Key makes a repeated request return the same shipment."""
    body = {"reference": reference, "address": address, "items": items}
    return _call("POST", "/shipments", body, idempotency_key=f"shipment-{reference}")


def register_delivery(reference: str, address: str, plan: str) -> dict[str, Any]:
    """Register a subscription's monthly delivery; repeated with the same reference, the same registration."""
    body = {"reference": reference, "address": address, "plan": plan}
    return _call("POST", "/registrations", body, idempotency_key=f"registration-{reference}")


def cancel_registration(registration_id: str) -> None:
    _call("DELETE", f"/registrations/{registration_id}")


def _call(
    method: str, path: str, body: dict[str, Any] | None = None, idempotency_key: str = ""
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {settings.CARRIER_API_KEY}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    with outside_call("carrier"):
        return _send(method, path, body, headers)


def _send(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> dict[str, Any]:
    try:
        response = _session.request(
            method,
            f"{settings.CARRIER_API_BASE}{path}",
            json=body,
            headers=headers,
            timeout=settings.CARRIER_TIMEOUT_SECONDS,
        )
    except requests.RequestException as exc:  # refused, reset, timed out
        raise no_answer("carrier", exc) from exc
    if response.status_code >= 400:
        raise http_error("carrier", response.status_code, f"{method} {path}: {response.text[:200]}")
    return response.json() if response.content else {}
