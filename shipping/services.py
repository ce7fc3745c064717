"""Shipments: asked of the carrier once per reference, recorded once."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from shipping import carrier
from shipping.models import Shipment


def request_shipment(reference: str, address: str, items: list[dict[str, Any]]) -> Shipment:
    """The shipment for `reference`, asked of the carrier at most once with effect: the carrier's
    Idempotency-Key returns the same shipment to a repeated request, and the row is unique."""
    existing = shipment_for(reference)
    if existing is not None:
        return existing
    created = carrier.create_shipment(reference, address, items)
    try:
        with transaction.atomic():
            return Shipment.objects.create(
                reference=reference,
                carrier_reference=created["id"],
                tracking_number=created.get("tracking_number", ""),
            )
    except IntegrityError:  # a duplicate job recorded the same shipment meanwhile (the carrier's key)
        return Shipment.objects.get(reference=reference)


def shipment_for(reference: str) -> Shipment | None:
    return shipments_for(reference).first()


def shipments_for(reference: str) -> QuerySet[Shipment]:
    """The shipment of `reference` as a query (one row at most: the reference is unique), to test
    (`Exists`) inside a larger one."""
    return Shipment.objects.filter(reference=reference)
