"""Shipments: asked of the carrier once per reference, recorded once."""

from __future__ import annotations

from typing import Any

from shipping import carrier
from shipping.models import Shipment


def request_shipment(reference: str, address: str, items: list[dict[str, Any]]) -> Shipment:
    """The shipment for `reference`, asked of the carrier at most once with effect: the carrier's
    Idempotency-Key returns the same shipment to a repeated request, and the row is unique."""
    existing = Shipment.objects.filter(reference=reference).first()
    if existing is not None:
        return existing
    created = carrier.create_shipment(reference, address, items)
    shipment, _ = Shipment.objects.get_or_create(
        reference=reference,
        defaults={"carrier_reference": created["id"], "tracking_number": created.get("tracking_number", "")},
    )
    return shipment


def shipment_for(reference: str) -> Shipment | None:
    return Shipment.objects.filter(reference=reference).first()
