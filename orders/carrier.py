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
    with breaker_for("carrier").guard(is_outage):
        return _post_shipment(reference, address, items)


def _post_shipment(reference: str, address: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        response = _session.post(
            f"{settings.CARRIER_API_BASE}/shipments",
            json={"reference": reference, "address": address, "items": items},
            headers={
                "Authorization": f"Bearer {settings.CARRIER_API_KEY}",
                "Idempotency-Key": f"shipment-{reference}",
            },
            timeout=settings.CARRIER_TIMEOUT_SECONDS,
        )
    except requests.RequestException as exc:
        raise TransientError(f"carrier unreachable: {exc}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"carrier {response.status_code}: {response.text[:200]}")
    if response.status_code >= 400:
        raise PermanentError(f"carrier refused the shipment ({response.status_code}): {response.text[:200]}")
    return response.json()
