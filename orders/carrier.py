"""The carrier (shipping) HTTP API. Errors become retry decisions: 5xx and timeouts are transient,
4xx means our request is wrong and retrying will not fix it."""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings

from jobkit.breaker import breaker_for
from jobkit.errors import PermanentError, TransientError, is_outage

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
    with breaker_for("carrier").guard(is_outage):
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
    except requests.RequestException as exc:
        raise TransientError(f"carrier unreachable: {exc}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"carrier {response.status_code}: {response.text[:200]}")
    if response.status_code >= 400:
        raise PermanentError(
            f"carrier refused {method} {path} ({response.status_code}): {response.text[:200]}"
        )
    return response.json() if response.content else {}
