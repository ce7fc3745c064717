from __future__ import annotations

from django.db import models


class Shipment(models.Model):
    """The carrier's record of one delivery, created once per reference (an order's public id)."""

    reference = models.CharField(max_length=80, unique=True, help_text="what is shipped, e.g. an order id")
    carrier_reference = models.CharField(max_length=255)
    tracking_number = models.CharField(max_length=255, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"shipment {self.carrier_reference} for {self.reference}"
