"""Shipments: asked of the carrier once per reference, recorded once."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jobkit.prepared import Arg
from jobkit.rows import insert_unless_taken
from shipping import carrier
from shipping.models import Shipment


def request_shipment(reference: str, address: str, items: list[dict[str, Any]]) -> Shipment:
    """The shipment for `reference`, asked of the carrier at most once with effect: the carrier's
    Idempotency-Key returns the same shipment to a repeated request, and the row is unique."""
    existing = shipment_for(reference)
    if existing is not None:
        return existing
    created = carrier.create_shipment(reference, address, items)
    shipment = Shipment(
        reference=reference,
        carrier_reference=created["id"],
        tracking_number=created.get("tracking_number", ""),
    )
    if insert_unless_taken(shipment):
        return shipment
    return Shipment.objects.get(reference=reference)  # a duplicate job recorded it first (the carrier's key)


def shipment_for(reference: str) -> Shipment | None:
    return shipments_for(reference).first()


def shipments_for(reference: str | Arg) -> QuerySet[Shipment]:
    """The shipment of `reference` as a query (one row at most: the reference is unique), to test
    (`Exists`) inside a larger one. The reference may be a prepared query's argument
    (`jobkit/prepared.py`)."""
    return Shipment.objects.filter(reference=reference)
